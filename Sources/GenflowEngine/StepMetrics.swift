internal import GenflowCore
internal import Metrics
internal import Synchronization

/// What the runner reports through swift-metrics (Prometheus in `genflow serve`, nothing elsewhere):
/// attempt durations and outcomes per stage, and retries by error class.
enum StepMetrics {
    private struct Key: Hashable {
        var stage: String
        var outcome: String
    }

    /// The metrics of each stage and outcome, made once: making them at each attempt looked them up
    /// in the backend's registry by label and dimensions (2 % of the daemon on one-step jobs).
    private static let attempts = Mutex<[Key: (duration: Timer, count: Counter)]>([:])

    static func attempt(stage: String, duration: Duration, error: StepError?) {
        let key = Key(stage: stage, outcome: error.map(\.errorClass.rawValue) ?? "ok")
        let metrics = attempts.withLock { made in
            if let metrics = made[key] { return metrics }
            let dimensions = [("stage", key.stage), ("outcome", key.outcome)]
            let metrics = (Timer(label: "genflow_step_duration_seconds", dimensions: dimensions), Counter(label: "genflow_step_attempts_total", dimensions: dimensions))
            made[key] = metrics
            return metrics
        }
        metrics.duration.recordNanoseconds(duration.nanoseconds)
        metrics.count.increment()
    }

    static func retry(stage: String, errorClass: ErrorClass) {
        Counter(label: "genflow_step_retries_total", dimensions: [("stage", stage), ("class", errorClass.rawValue)]).increment()
    }
}

extension Result {
    /// The error of a failure.
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
