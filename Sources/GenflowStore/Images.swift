public import GenflowCore
public import GenflowPostgres
internal import Foundation

extension StoreSession {
    /// Records the images of one job step, keyed by job, step and position: running the step again
    /// updates the same rows. Returns the image ids in order.
    public func recordImages(_ images: [ImageRecord], userID: String, jobID: String, step: String) throws -> [String] {
        try writeImages(images.enumerated().map { position, image in
            (userID: userID, jobID: jobID, row: JobBatch.ImageRow(id: UUID().uuidString.lowercased(), step: step, position: position, record: image))
        })
    }

    /// Upserts images of job steps by (job, step, position) in one statement; returns their ids in order.
    @discardableResult
    func writeImages(_ images: [(userID: String, jobID: String, row: JobBatch.ImageRow)]) throws -> [String] {
        guard !images.isEmpty else { return [] }
        let records = images.map(\.row.record)
        let ids = try connection.query("""
            INSERT INTO genflow.generated_images (id, user_id, job_id, step, position, prompt, full_prompt, image_url, dataset_id,
                style, aspect_ratio, quality, format, resolution, reference_images_count, file_path, byte_count)
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::int[], $6::text[], $7::text[], $8::text[], $9::text[],
                $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::int[], $16::text[], $17::bigint[])
            ON CONFLICT (job_id, step, position) WHERE job_id IS NOT NULL DO UPDATE SET
                prompt = excluded.prompt, full_prompt = excluded.full_prompt, image_url = excluded.image_url,
                dataset_id = excluded.dataset_id, style = excluded.style, aspect_ratio = excluded.aspect_ratio,
                quality = excluded.quality, format = excluded.format, resolution = excluded.resolution,
                reference_images_count = excluded.reference_images_count, file_path = excluded.file_path, byte_count = excluded.byte_count
            RETURNING job_id::text, step, position, id::text
            """, [
                PostgresArray(images.map(\.row.id)), PostgresArray(images.map(\.userID)), PostgresArray(images.map(\.jobID)),
                PostgresArray(images.map(\.row.step)), PostgresArray(images.map(\.row.position)),
                PostgresArray(records.map(\.prompt)), PostgresArray(records.map(\.fullPrompt)), PostgresArray(records.map(\.imageURL)),
                PostgresArray(records.map(\.datasetID)), PostgresArray(records.map(\.style)), PostgresArray(records.map(\.aspectRatio)),
                PostgresArray(records.map(\.quality)), PostgresArray(records.map(\.format)), PostgresArray(records.map(\.resolution)),
                PostgresArray(records.map(\.referenceImagesCount)), PostgresArray(records.map(\.filePath)), PostgresArray(records.map(\.byteCount)),
            ]).rows
        let byKey = Dictionary(ids.map { ("\($0["job_id"] ?? "") \($0["step"] ?? "") \($0["position"] ?? "")", $0["id"] ?? "") }) { first, _ in first }
        return images.map { byKey["\($0.jobID) \($0.row.step) \($0.row.position)"] ?? $0.row.id }
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
