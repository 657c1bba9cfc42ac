public import GenflowCore
public import GenflowRecords

/// The API's shapes of the product's records (SPEC §9). The records module keeps typed values;
/// what a client sees, URLs included, is decided here.
extension Prompt {
    public var json: JSON {
        [
            "id": .string(id), "job_id": jobID.map(JSON.string) ?? .null, "instructions": .string(instructions),
            "style": style.map(JSON.string) ?? .null, "color_scheme": colorScheme.map(JSON.string) ?? .null,
            "status": .string(status.rawValue), "error": error.map(JSON.string) ?? .null, "request_metadata": requestMetadata,
            "created_at": .string(createdAt), "updated_at": .string(updatedAt),
            "canvases": .array(canvases.map { ["id": .string($0.id), "objects": .array($0.objects)] }),
        ]
    }
}

extension PromptStats {
    public var json: JSON {
        [
            "total": .int(total),
            "by_status": .object(Dictionary(uniqueKeysWithValues: PromptStatus.allCases.map { ($0.rawValue, JSON.int(byStatus[$0] ?? 0)) })),
            "success_rate": successRate.map(JSON.double) ?? .null, "last_24h": .int(lastDay), "objects": .int(objects),
        ]
    }
}

extension GeneratedImage {
    /// Where the API serves an image whose bytes Genflow keeps.
    public static func contentPath(id: String) -> String { "/v1/images/\(id)/content" }

    /// An image kept as a file has `image_url` `contentPath`, where the API serves it.
    public var json: JSON {
        [
            "id": .string(id), "job_id": jobID.map(JSON.string) ?? .null, "prompt": .string(prompt),
            "full_prompt": fullPrompt.map(JSON.string) ?? .null,
            "image_url": (imageURL ?? filePath.map { _ in Self.contentPath(id: id) }).map(JSON.string) ?? .null,
            "dataset_id": datasetID.map(JSON.string) ?? .null, "style": style.map(JSON.string) ?? .null,
            "aspect_ratio": aspectRatio.map(JSON.string) ?? .null, "quality": quality.map(JSON.string) ?? .null,
            "format": format.map(JSON.string) ?? .null, "resolution": resolution.map(JSON.string) ?? .null,
            "reference_images_count": .int(referenceImagesCount), "bytes": byteCount.map(JSON.int) ?? .null,
            "created_at": .string(createdAt),
        ]
    }
}

extension LedgerEntry {
    /// `{id, change, balance_after, reason, job_id, created_at}`.
    public var json: JSON {
        [
            "id": .int(Int(id)), "change": .int(change), "balance_after": .int(balanceAfter), "reason": .string(reason),
            "job_id": jobID.map(JSON.string) ?? .null, "created_at": .string(createdAt),
        ]
    }
}
