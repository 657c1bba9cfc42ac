public import GenflowCore
public import GenflowPostgres
internal import Foundation

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
    /// Where the image's bytes are, relative to the state directory, when the provider sent bytes.
    public var filePath: String?
    public var byteCount: Int?

    public init(
        prompt: String, fullPrompt: String?, imageURL: String?, datasetID: String?, style: String?, aspectRatio: String?,
        quality: String?, format: String?, resolution: String?, referenceImagesCount: Int, filePath: String? = nil, byteCount: Int? = nil
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
        self.filePath = filePath
        self.byteCount = byteCount
    }
}

extension StoreSession {
    /// Records the images of one job step, keyed by job, step and position: running the step again
    /// updates the same rows. Returns the image ids in order.
    public func recordImages(_ images: [ImageRecord], userID: String, jobID: String, step: String) throws -> [String] {
        try images.enumerated().map { position, image in
            try connection.query("""
                INSERT INTO genflow.generated_images (id, user_id, job_id, step, position, prompt, full_prompt, image_url, dataset_id,
                    style, aspect_ratio, quality, format, resolution, reference_images_count, file_path, byte_count)
                VALUES (gen_random_uuid(), $1, $2::uuid, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                ON CONFLICT (job_id, step, position) WHERE job_id IS NOT NULL DO UPDATE SET
                    prompt = excluded.prompt, full_prompt = excluded.full_prompt, image_url = excluded.image_url,
                    dataset_id = excluded.dataset_id, style = excluded.style, aspect_ratio = excluded.aspect_ratio,
                    quality = excluded.quality, format = excluded.format, resolution = excluded.resolution,
                    reference_images_count = excluded.reference_images_count, file_path = excluded.file_path, byte_count = excluded.byte_count
                RETURNING id::text
                """, [userID, jobID, step, position, image.prompt, image.fullPrompt, image.imageURL, image.datasetID, image.style,
                      image.aspectRatio, image.quality, image.format, image.resolution, image.referenceImagesCount,
                      image.filePath, image.byteCount]).rows.first?["id"] ?? ""
        }
    }

    /// A user's generated images, newest first, optionally of one dataset: the API's image shape.
    /// An image kept as a file has `image_url` `/v1/images/{id}/content`, where the API serves it.
    public func images(userID: String, datasetID: String? = nil, before cursor: PageCursor? = nil, limit: Int = 50) throws -> [JSON] {
        try imageRows("""
            user_id = $1 AND ($2::text IS NULL OR dataset_id = $2)
              AND ($3::timestamptz IS NULL OR (created_at, id) < ($3::timestamptz, $4::uuid))
            ORDER BY created_at DESC, id DESC LIMIT $5
            """, [userID, datasetID, cursor?.createdAt, cursor?.id, limit])
    }

    /// One of the user's images; nil when there is none with that id for this user.
    public func image(id: String, userID: String) throws -> JSON? {
        guard UUID(uuidString: id) != nil else { return nil }
        return try imageRows("user_id = $1 AND id = $2::uuid", [userID, id]).first
    }

    /// Where one of the user's images is kept under the state directory, and its format.
    public func imageFile(id: String, userID: String) throws -> (path: String, format: String?)? {
        guard UUID(uuidString: id) != nil else { return nil }
        let row = try connection.query(
            "SELECT file_path, format FROM genflow.generated_images WHERE id = $1::uuid AND user_id = $2 AND file_path IS NOT NULL", [id, userID]
        ).rows.first
        return row?["file_path"].map { ($0, row?["format"]) }
    }

    private func imageRows(_ condition: String, _ parameters: [(any PostgresEncodable)?]) throws -> [JSON] {
        try connection.query("""
            SELECT json_build_object('id', id, 'job_id', job_id, 'prompt', prompt, 'full_prompt', full_prompt,
                'image_url', COALESCE(image_url, CASE WHEN file_path IS NOT NULL THEN '/v1/images/' || id || '/content' END),
                'dataset_id', dataset_id, 'style', style, 'aspect_ratio', aspect_ratio, 'quality', quality, 'format', format,
                'resolution', resolution, 'reference_images_count', reference_images_count, 'bytes', byte_count,
                'created_at', genflow.iso(created_at))::text AS image
            FROM genflow.generated_images WHERE \(condition)
            """, parameters).rows.compactMap { $0["image"] }.map { try JSON(parsing: $0) }
    }
}
