public import GenflowCore
public import GenflowPostgres
public import GenflowQueue
internal import Foundation

/// A generated image as stored: its job, its record (as `persist.image` wrote it) and when.
public struct GeneratedImage: Sendable {
    public var id: String
    public var jobID: String?
    public var record: ImageRecord
    public var createdAt: String
}

extension StoreSession {
    /// Records the images of one job step, keyed by job, step and position: running the step again
    /// updates the same rows. Returns the image ids in order.
    public func recordImages(_ images: [ImageRecord], userID: String, jobID: String, step: String) throws -> [String] {
        try writeImages(images.enumerated().map { position, image in
            (userID: userID, jobID: jobID, row: RecordBatch.ImageRow(id: UUID().uuidString.lowercased(), step: step, position: position, record: image))
        })
    }

    /// Upserts images of job steps by (job, step, position) in one statement; returns their ids in order.
    @discardableResult
    func writeImages(_ images: [(userID: String, jobID: String, row: RecordBatch.ImageRow)]) throws -> [String] {
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

    /// A user's generated images, newest first, optionally of one dataset.
    public func images(userID: String, datasetID: String? = nil, before cursor: PageCursor? = nil, limit: Int = 50) throws -> [GeneratedImage] {
        try images("""
            user_id = $1 AND ($2::text IS NULL OR dataset_id = $2)
              AND ($3::timestamptz IS NULL OR (created_at, id) < ($3::timestamptz, $4::uuid))
            ORDER BY created_at DESC, id DESC LIMIT $5
            """, [userID, datasetID, cursor?.createdAt, cursor?.id, limit])
    }

    /// One of the user's images; nil when there is none with that id for this user.
    public func image(id: String, userID: String) throws -> GeneratedImage? {
        guard UUID(uuidString: id) != nil else { return nil }
        return try images("user_id = $1 AND id = $2::uuid", [userID, id]).first
    }

    private func images(_ condition: String, _ parameters: [(any PostgresEncodable)?]) throws -> [GeneratedImage] {
        try connection.query("""
            SELECT id::text, job_id::text, prompt, full_prompt, image_url, dataset_id, style, aspect_ratio, quality, format, resolution,
                reference_images_count, file_path, byte_count, genflow.iso(created_at) AS created_at
            FROM genflow.generated_images WHERE \(condition)
            """, parameters).rows.map { row in
            GeneratedImage(
                id: row["id"] ?? "", jobID: row["job_id"],
                record: ImageRecord(
                    prompt: row["prompt"] ?? "", fullPrompt: row["full_prompt"], imageURL: row["image_url"], datasetID: row["dataset_id"],
                    style: row["style"], aspectRatio: row["aspect_ratio"], quality: row["quality"], format: row["format"],
                    resolution: row["resolution"], referenceImagesCount: row.decode("reference_images_count") ?? 0, filePath: row["file_path"],
                    byteCount: row.decode("byte_count")
                ),
                createdAt: row["created_at"] ?? ""
            )        }
    }
}
