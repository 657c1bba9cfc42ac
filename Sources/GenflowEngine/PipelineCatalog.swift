public import GenflowCore
public import GenflowPipeline
public import GenflowQueue
internal import Synchronization
internal import Foundation

/// The pipelines this daemon knows: the current version of each (what new jobs use) and every
/// version jobs have run on (a job runs to the end on the version it was submitted with).
public final class PipelineCatalog: Sendable {
    private struct State {
        var current: [String: Pipeline] = [:]
        var versions: [String: Pipeline] = [:]
        /// The last rejected edit per file, with its diagnostics.
        var failures: [String: DiagnosticsError] = [:]
        /// When each pipeline's current version became current (ISO 8601).
        var loadedAt: [String: String] = [:]
    }

    private let state = Mutex(State())
    public let loader: PipelineLoader

    public init(loader: PipelineLoader) {
        self.loader = loader
    }

    private static func key(_ name: String, _ version: String) -> String { "\(name)@\(version)" }

    /// What one load changed.
    public struct LoadReport: Sendable {
        /// Pipelines whose current version is new (a new file, or an edit that validated).
        public var added: [Pipeline] = []
        /// Names no longer defined by any file (their files were deleted or renamed).
        public var removed: [String] = []
        /// Files rejected now whose error differs from the one already reported for them.
        public var newlyRejected: [DiagnosticsError] = []
    }

    /// Loads every pipeline file in `directory`. A file that fails keeps its previous version
    /// active; its error is kept for `failures`. A pipeline whose file is gone is no longer current
    /// (jobs already on it finish: every version stays known).
    @discardableResult
    public func load(directory: String) -> LoadReport {
        let (pipelines, failures) = loader.load(directory: directory)
        let failedFiles = Set(failures.compactMap { $0.diagnostics.first?.location.file })
        return state.withLock { state in
            var report = LoadReport()
            for pipeline in pipelines {
                if state.current[pipeline.name]?.version != pipeline.version {
                    report.added.append(pipeline)
                    state.loadedAt[pipeline.name] = Self.now()
                }
                state.current[pipeline.name] = pipeline
                state.versions[Self.key(pipeline.name, pipeline.version)] = pipeline
            }
            let defined = Set(pipelines.map(\.name))
            for (name, pipeline) in state.current where !defined.contains(name) {
                // A file that now fails keeps its last good version; a file that is gone, or now
                // defines another name, does not.
                if !failedFiles.contains(pipeline.file) {
                    state.current[name] = nil
                    state.loadedAt[name] = nil
                    report.removed.append(name)
                }
            }
            var current: [String: DiagnosticsError] = [:]
            for failure in failures {
                guard let file = failure.diagnostics.first?.location.file else { continue }
                if state.failures[file]?.description != failure.description { report.newlyRejected.append(failure) }
                current[file] = failure
            }
            state.failures = current
            return report
        }
    }

    /// Adds one pipeline (tests, `genflow submit` of a single file).
    public func add(_ pipeline: Pipeline) {
        state.withLock { state in
            state.loadedAt[pipeline.name] = Self.now()
            state.current[pipeline.name] = pipeline
            state.versions[Self.key(pipeline.name, pipeline.version)] = pipeline
        }
    }

    /// The current version of `name`.
    public func pipeline(named name: String) -> Pipeline? {
        state.withLock { $0.current[name] }
    }

    /// All current pipelines, by name.
    public var pipelines: [Pipeline] {
        state.withLock { $0.current.values.sorted { $0.name < $1.name } }
    }

    /// When the current version of `name` was loaded (ISO 8601).
    public func loadedAt(_ name: String) -> String? {
        state.withLock { $0.loadedAt[name] }
    }

    static func now() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date())
    }

    /// Rejected files and why.
    public var failures: [DiagnosticsError] {
        state.withLock { Array($0.failures.values) }
    }

    /// The pipeline `name` at `version`: from memory, else rebuilt from its stored definition.
    public func pipeline(named name: String, version: String, store: JobStore) async throws -> Pipeline {
        if let known = state.withLock({ $0.versions[Self.key(name, version)] }) { return known }
        guard let definition = try await store.read({ try $0.pipelineDefinition(name: name, version: version) }) else {
            throw StepError(.internal, "pipeline \(name) version \(version) is not stored")
        }
        // JSON is YAML: the canonical form loads through the same validation as a file.
        let pipeline = try loader.load(source: definition.description, file: "\(name)@\(version.prefix(12))")
        state.withLock { $0.versions[Self.key(name, version)] = pipeline }
        return pipeline
    }
}
