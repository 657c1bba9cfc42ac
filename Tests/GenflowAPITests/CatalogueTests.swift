import Foundation
import GenflowCore
import GenflowQueue
import Testing

/// The catalogues of event types, step statuses and error classes are what the API documents: a
/// name added to one and not to docs/api.md (or the other way round) fails here.
@Suite("Catalogues against the API reference", .timeLimit(.minutes(3)))
struct CatalogueTests {
    static let reference: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return (try? String(contentsOf: root.appendingPathComponent("docs/api.md"), encoding: .utf8)) ?? ""
    }()

    /// The names in the first column of the table under the line that starts with `heading`.
    static func tableNames(after heading: String) -> [String] {
        let lines = reference.components(separatedBy: "\n")
        guard let start = lines.firstIndex(where: { $0.hasPrefix(heading) }) else { return [] }
        return lines[(start + 1)...].drop { !$0.hasPrefix("|") }.prefix { $0.hasPrefix("|") }.compactMap { line in
            let cell = line.split(separator: "|").first?.trimmingCharacters(in: .whitespaces) ?? ""
            return cell.hasPrefix("`") ? cell.trimmingCharacters(in: CharacterSet(charactersIn: "`")) : nil
        }
    }

    @Test("every event type the daemon writes is in the reference's table, and nothing else is")
    func eventTypes() {
        #expect(Set(Self.tableNames(after: "### Event types")) == Set(EventType.allCases.map(\.rawValue)))
    }

    @Test("every step status is documented, and nothing else is")
    func stepStatuses() {
        #expect(Set(Self.tableNames(after: "A step's (and a run's) `status`")) == Set(StepStatus.allCases.map(\.rawValue)))
    }

    @Test("every error class Genflow produces is documented, with whether it is retried")
    func errorClasses() {
        #expect(Set(Self.tableNames(after: "A failure's `error.class`")) == Set(ErrorClass.known.map(\.rawValue)))
        let never = Self.reference.components(separatedBy: "\n").filter { $0.contains("| never |") }.compactMap { line in
            line.split(separator: "|").first?.trimmingCharacters(in: CharacterSet(charactersIn: "` "))
        }
        #expect(Set(never) == Set(ErrorClass.neverRetried.map(\.rawValue)))
    }
}
