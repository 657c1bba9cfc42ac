import GenflowCore
import GenflowQueue

/// What `genflow submit --follow` keeps below the event lines on a terminal: one line per step or
/// item running now, with its progress bar, so branches that run side by side show side by side.
/// Pure: `SubmitCommand.follow` feeds it events and draws its lines.
struct FollowBoard {
    struct Line {
        var unit: String
        var text: String
        var objects = 0
    }

    private(set) var lines: [Line] = []

    /// `step`, or `step[item]` for an item of a `for_each` step.
    static func unit(of event: Event) -> String {
        (event.step ?? "") + (event.data["item"]?.intValue.map { "[\($0)]" } ?? "")
    }

    /// Takes `event` into the board; returns whether a line changed.
    mutating func apply(_ event: Event) -> Bool {
        let unit = Self.unit(of: event)
        switch event.kind {
        case .stepStarted?:
            set(unit, "running (attempt \(event.data["attempt"]?.intValue ?? 1))")
        case .stepProgress?:
            set(unit, Self.bar(event))
        case .canvasObjects?:
            guard let index = lines.firstIndex(where: { $0.unit == unit }) else { return false }
            lines[index].objects += event.data["objects"]?.arrayValue?.count ?? 0
        case .stepCompleted?, .stepRetrying?:
            lines.removeAll { $0.unit == unit }
        case .jobCompleted?, .jobFailed?, .jobCancelled?:
            lines = []
        default:
            return false
        }
        return true
    }

    /// The board's lines as printed.
    var rendered: [String] {
        lines.map { "  ▸ \($0.unit)  \($0.text)" + ($0.objects > 0 ? " · \($0.objects) objects" : "") }
    }

    private mutating func set(_ unit: String, _ text: String) {
        if let index = lines.firstIndex(where: { $0.unit == unit }) {
            lines[index].text = text
        } else {
            lines.append(Line(unit: unit, text: text))
        }
    }

    /// `[##########··········]  50% received 812 characters`.
    static func bar(_ event: Event) -> String {
        let message = event.data["message"]?.stringValue ?? ""
        guard let reported = event.data["fraction"]?.doubleValue else { return message }
        let fraction = min(max(reported, 0), 1)
        let filled = Int((fraction * 20).rounded())
        let percent = String(Int(fraction * 100))
        return "[" + String(repeating: "#", count: filled) + String(repeating: "·", count: 20 - filled) + "] "
            + String(repeating: " ", count: max(0, 3 - percent.count)) + percent + "% " + message
    }
}
