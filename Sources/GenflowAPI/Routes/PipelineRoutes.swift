internal import GenflowCore
internal import GenflowEngine
internal import GenflowPipeline

/// Loaded pipelines and registered stages.
enum PipelineRoutes {
    static func routes(_ context: RouteContext) -> [Route] {
        [
            Route(method: "GET", pattern: "/v1/pipelines", access: .user, summary: "Loaded pipeline versions and files that failed to load.") { _ in
                .json(["items": .array(pipelineDocuments(context.catalog))])
            },
            Route(method: "GET", pattern: "/v1/pipelines/{name}", access: .user, summary: "One pipeline: version, file, input schema, steps, definition.") { call in
                let name = call.parameter("name")
                guard let pipeline = context.catalog.pipeline(named: name) else { throw APIError.notFound("pipeline") }
                var document = pipelineDocument(pipeline, catalog: context.catalog)
                document["input"] = pipeline.input.json
                let levels = pipeline.graph.levels
                document["steps"] = .array(pipeline.steps.map { step in
                    var entry: [String: JSON] = [
                        "id": .string(step.id), "stage": .string(step.stage), "needs": .array(step.needs.map(JSON.string)),
                        "level": .int(levels.firstIndex { $0.contains(step.id) } ?? 0),
                    ]
                    if let forEach = step.forEach { entry["max_parallel"] = .int(forEach.maxParallel) }
                    if step.continueOnError { entry["continue_on_error"] = true }
                    return .object(entry)
                })
                document["definition"] = pipeline.canonical
                return .json(.object(document))
            },
            Route(method: "GET", pattern: "/v1/stages", access: .user, summary: "Every registered stage with its config schema.") { _ in
                .json(["items": .array(context.registry.descriptors.map(\.json))])
            },
        ]
    }

    /// A pipeline as `GET /v1/pipelines` lists it.
    static func pipelineDocument(_ pipeline: Pipeline, catalog: PipelineCatalog) -> [String: JSON] {
        var document: [String: JSON] = [
            "name": .string(pipeline.name), "version": .string(pipeline.version), "file": .string(pipeline.file),
            "description": .string(pipeline.description), "loaded_at": catalog.loadedAt(pipeline.name).map(JSON.string) ?? .null,
        ]
        if let failure = catalog.failures.first(where: { $0.diagnostics.first?.location.file == pipeline.file }) {
            document["error"] = .string(failure.description)
        }
        return document
    }

    static func pipelineDocuments(_ catalog: PipelineCatalog) -> [JSON] {
        let loaded = catalog.pipelines
        let files = Set(loaded.map(\.file))
        let broken: [JSON] = catalog.failures.compactMap { failure in
            guard let file = failure.diagnostics.first?.location.file, !files.contains(file) else { return nil }
            return ["name": .null, "version": .null, "file": .string(file), "loaded_at": .null, "error": .string(failure.description)]
        }
        return loaded.map { .object(pipelineDocument($0, catalog: catalog)) } + broken
    }
}
