internal import GenflowCore
internal import Metrics

/// What the runner reports through swift-metrics (Prometheus in `genflow serve`, nothing elsewhere):
/// attempt durations and outcomes per stage, and retries by error class.
enum StepMetrics {
    static func attempt(stage: String, duration: Duration, error: StepError?) {
        let outcome = error.map(\.errorClass.rawValue) ?? "ok"
        Timer(label: "genflow_step_duration_seconds", dimensions: [("stage", stage), ("outcome", outcome)]).recordNanoseconds(duration.nanoseconds)
        Counter(label: "genflow_step_attempts_total", dimensions: [("stage", stage), ("outcome", outcome)]).increment()
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
