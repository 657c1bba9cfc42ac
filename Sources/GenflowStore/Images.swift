public import GenflowCore
public import GenflowPostgres

/// Metadata of one generated image, as `persist.image` records it (SPEC §6 and §9's fields).
public struct ImageRecord: Sendable {
    public var prompt: String
    public var fullPrompt: String?
    public var imageURL: String?
    public var datasetID: String?
    public var style: String?
    public var aspectRatio: String?
    public var quality: String?
    public var format: String?
    public var resolution: String?
    public var referenceImagesCount: Int

    public init(
        prompt: String, fullPrompt: String?, imageURL: String?, datasetID: String?, style: String?, aspectRatio: String?,
        quality: String?, format: String?, resolution: String?, referenceImagesCount: Int
    ) {
        self.prompt = prompt
        self.fullPrompt = fullPrompt
        self.imageURL = imageURL
        self.datasetID = datasetID
        self.style = style
        self.aspectRatio = aspectRatio
        self.quality = quality
        self.format = format
        self.resolution = resolution
        self.referenceImagesCount = referenceImagesCount
    }
}

extension StoreSession {
    /// Records the images of one job step, keyed by job, step and position: running the step again
    /// updates the same rows. Returns the image ids in order.
    public func recordImages(_ images: [ImageRecord], userID: String, jobID: String, step: String) throws -> [String] {
        try images.enumerated().map { position, image in
            try connection.query("""
                INSERT INTO genflow.generated_images (id, user_id, job_id, step, position, prompt, full_prompt, image_url, dataset_id,
                    style, aspect_ratio, quality, format, resolution, reference_images_count)
                VALUES (gen_random_uuid(), $1, $2::uuid, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                ON CONFLICT (job_id, step, position) WHERE job_id IS NOT NULL DO UPDATE SET
                    prompt = excluded.prompt, full_prompt = excluded.full_prompt, image_url = excluded.image_url,
                    dataset_id = excluded.dataset_id, style = excluded.style, aspect_ratio = excluded.aspect_ratio,
                    quality = excluded.quality, format = excluded.format, resolution = excluded.resolution,
                    reference_images_count = excluded.reference_images_count
                RETURNING id::text
                """, [userID, jobID, step, position, image.prompt, image.fullPrompt, image.imageURL, image.datasetID, image.style,
                      image.aspectRatio, image.quality, image.format, image.resolution, image.referenceImagesCount]).rows.first?["id"] ?? ""
        }
    }

    /// A user's generated images, newest first, optionally of one dataset: the API's image shape.
    public func images(userID: String, datasetID: String? = nil, limit: Int = 50) throws -> [JSON] {
        try connection.query("""
            SELECT json_build_object('id', id, 'prompt', prompt, 'full_prompt', full_prompt, 'image_url', image_url,
                'dataset_id', dataset_id, 'style', style, 'aspect_ratio', aspect_ratio, 'quality', quality, 'format', format,
                'resolution', resolution, 'reference_images_count', reference_images_count, 'created_at', genflow.iso(created_at))::text AS image
            FROM genflow.generated_images WHERE user_id = $1 AND ($2::text IS NULL OR dataset_id = $2)
            ORDER BY created_at DESC, id DESC LIMIT $3
            """, [userID, datasetID, limit]).rows.compactMap { $0["image"] }.map { try JSON(parsing: $0) }
    }
}
