internal import GenflowCore

/// The OpenAPI 3.1 document of the API, made from the route table itself, so it cannot drift from
/// what the daemon serves.
enum OpenAPI {
    static func document(routes: [Route]) -> JSON {
        var paths: [String: [String: JSON]] = [:]
        for route in routes {
            paths[route.pattern, default: [:]][route.method.lowercased()] = operation(route)
        }
        paths["/openapi.json", default: [:]]["get"] = [
            "summary": "This document: OpenAPI 3.1, made from the route table.", "operationId": "get_openapi",
            "responses": ["200": ["description": "The document."]],
        ]
        paths["/v1/events", default: [:]]["get"] = [
            "summary": "WebSocket of the user's events (upgrade). Token in Authorization or ?token=; ?since=<event id> replays what was missed. Client messages: {op: subscribe|unsubscribe, job_id, since?}, {op: ping}. Server messages: {op: event, id, type, job_id, step, at, data}, {op: error, code, message}. A refused upgrade closes with 4000 + HTTP status (4401, 4400, 4404); a client too slow for its queue is closed with 1008.",
            "operationId": "get_v1_events",
            "parameters": .array(["token", "since", "user_id"].map { ["name": .string($0), "in": "query", "required": false, "schema": ["type": "string"]] }),
            "responses": ["101": ["description": "Switching protocols to WebSocket."]],
        ]
        return [
            "openapi": "3.1.0",
            "info": ["title": "Genflow", "version": "1", "description": "AI generation pipelines: jobs, prompts, images, tokens and live events."],
            "components": [
                "securitySchemes": [
                    "user": ["type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "HS256 JWT; sub is the user id."],
                    "operator": ["type": "http", "scheme": "bearer", "description": "The admin token (auth.admin_token)."],
                ],
                "schemas": [
                    "Error": [
                        "type": "object", "required": ["error"],
                        "properties": ["error": [
                            "type": "object", "required": ["code", "message"],
                            "properties": ["code": ["type": "string"], "message": ["type": "string"], "details": [:]],
                        ]],
                    ],
                ],
            ],
            "paths": .object(paths.mapValues { .object($0) }),
        ]
    }

    static func operation(_ route: Route) -> JSON {
        let pathParameters = route.pattern.split(separator: "/").filter { $0.hasPrefix("{") }.map { String($0.dropFirst().dropLast()) }
        var parameters: [JSON] = pathParameters.map { ["name": .string($0), "in": "path", "required": true, "schema": ["type": "string"]] }
        parameters += route.query.map { ["name": .string($0), "in": "query", "required": false, "schema": ["type": "string"]] }
        var responses: [String: JSON] = [String(route.status): ["description": "Success."]]
        let error: JSON = ["description": "An error.", "content": ["application/json": ["schema": ["$ref": "#/components/schemas/Error"]]]]
        var codes = ["400"]
        switch route.access {
        case .anyone: break
        case .user: codes += ["401"]
        case .operator: codes += ["401", "403"]
        }
        if !pathParameters.isEmpty { codes.append("404") }
        if route.method == "POST" { codes += ["409", "413", "422"] }
        if route.pattern == "/v1/jobs" && route.method == "POST" { codes.append("429") }
        for code in codes { responses[code] = error }
        var operation: [String: JSON] = [
            "summary": .string(route.summary),
            "operationId": .string(route.method.lowercased() + route.pattern.replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "{", with: "").replacingOccurrences(of: "}", with: "").replacingOccurrences(of: ".", with: "_")),
            "responses": .object(responses),
        ]
        if !parameters.isEmpty { operation["parameters"] = .array(parameters) }
        switch route.access {
        case .anyone: break
        case .user: operation["security"] = [["user": []], ["operator": []]]
        case .operator: operation["security"] = [["operator": []]]
        }
        return .object(operation)
    }
}
