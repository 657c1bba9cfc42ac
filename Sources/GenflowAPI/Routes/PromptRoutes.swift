internal import GenflowQueue
internal import GenflowRecords

/// The prompt history: list, stats, read, delete.
enum PromptRoutes {
    static func routes(_ context: RouteContext) -> [Route] {
        [
            Route(method: "GET", pattern: "/v1/prompts", access: .user, summary: "Prompt history, newest first, with canvases and objects.", query: ["user_id", "limit", "cursor"]) { call in
                let (user, (limit, text)) = (try call.owner(), try call.page())
                let after = try context.cursor(text)
                let prompts = try await context.read { try $0.prompts(userID: user, before: after, limit: limit) }.map(\.json)
                return .page(prompts, next: PageCursor.next(after: prompts, limit: limit)?.text)
            },
            Route(method: "GET", pattern: "/v1/prompts/stats", access: .user, summary: "Prompt counts by status, success rate, last day, objects drawn.", query: ["user_id"]) { call in
                let user = try call.owner()
                return .json(try await context.read { try $0.promptStats(userID: user) }.json)
            },
            Route(method: "GET", pattern: "/v1/prompts/{id}", access: .user, summary: "One prompt with its canvases and objects.") { call in
                let (id, user) = (call.parameter("id"), try call.owner())
                guard let prompt = try await context.read({ try $0.prompt(id: id, userID: user) }) else { throw APIError.notFound("prompt") }
                return .json(prompt.json)
            },
            Route(method: "DELETE", pattern: "/v1/prompts/{id}", access: .user, summary: "Delete a prompt with its canvases and objects.", status: 204) { call in
                let (id, user) = (call.parameter("id"), try call.owner())
                guard try await context.write({ try $0.deletePrompt(id: id, userID: user) }) else { throw APIError.notFound("prompt") }
                return Reply(status: 204)
            },
        ]
    }
}
