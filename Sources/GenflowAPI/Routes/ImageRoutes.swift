internal import Foundation
internal import GenflowQueue
internal import GenflowRecords

/// Generated images: list, read, their bytes.
enum ImageRoutes {
    static func routes(_ context: RouteContext) -> [Route] {
        [
            Route(method: "GET", pattern: "/v1/images", access: .user, summary: "Generated images, newest first.", query: ["dataset_id", "user_id", "limit", "cursor"]) { call in
                let (user, (limit, text)) = (try call.owner(), try call.page())
                let (after, dataset) = (try context.cursor(text), call.request.query["dataset_id"])
                let images = try await context.read { try $0.images(userID: user, datasetID: dataset, before: after, limit: limit) }.map(\.json)
                return .page(images, next: PageCursor.next(after: images, limit: limit)?.text)
            },
            Route(method: "GET", pattern: "/v1/images/{id}", access: .user, summary: "One generated image's record.") { call in
                let (id, user) = (call.parameter("id"), try call.owner())
                guard let image = try await context.read({ try $0.image(id: id, userID: user) }) else { throw APIError.notFound("image") }
                return .json(image.json)
            },
            Route(method: "GET", pattern: "/v1/images/{id}/content", access: .user, summary: "The bytes of an image kept under the state directory.") { call in
                let (id, user) = (call.parameter("id"), try call.owner())
                guard let image = try await context.read({ try $0.image(id: id, userID: user) }), let path = image.record.filePath,
                      !path.contains(".."), let bytes = FileManager.default.contents(atPath: "\(context.configuration.stateDirectory)/\(path)") else {
                    throw APIError.notFound("image file")
                }
                let type = ["png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"][image.record.format ?? ""] ?? "application/octet-stream"
                return Reply(status: 200, raw: (type, [UInt8](bytes)))
            },

        ]
    }
}
