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
        func text(_ value: String?) -> JSON { value.map(JSON.string) ?? .null }
        return [
            "id": .string(id), "job_id": text(jobID), "prompt": .string(record.prompt), "full_prompt": text(record.fullPrompt),
            "image_url": text(record.imageURL ?? record.filePath.map { _ in Self.contentPath(id: id) }),
            "dataset_id": text(record.datasetID), "style": text(record.style), "aspect_ratio": text(record.aspectRatio),
            "quality": text(record.quality), "format": text(record.format), "resolution": text(record.resolution),
            "reference_images_count": .int(record.referenceImagesCount), "bytes": record.byteCount.map(JSON.int) ?? .null,
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
