/// The order of a pipeline's steps: each step runs once every step it needs has completed. A step
/// that names no needs follows the step written above it, so a plain list of steps is a chain and
/// means what it always meant. Pure: built once at load, asked by the loader (references must go
/// upstream), the engine (which steps are ready) and the CLI (`validate --graph`, `run --dry-run`).
public struct StepGraph: Sendable, Hashable {
    /// Step ids in file order.
    public let ids: [String]
    /// Each step's direct needs, in the order written.
    public let needs: [String: [String]]
    /// Each step's upstream: every step it needs, directly or through others.
    public let upstream: [String: Set<String>]
    /// Each step's position in file order.
    public let position: [String: Int]
    /// By position: the positions each step needs (the engine's hot path hashes no ids).
    public let needPositions: [[Int]]
    /// By position: the positions upstream of each step, in file order.
    public let upstreamPositions: [[Int]]

    /// The graph of `ids` (file order) with their `needs`; nil when the needs form a cycle
    /// (`cycle(ids:needs:)` says which).
    public init?(ids: [String], needs: [String: [String]]) {
        guard Self.cycle(ids: ids, needs: needs) == nil else { return nil }
        self.ids = ids
        self.needs = needs
        position = Dictionary(ids.enumerated().map { ($1, $0) }) { first, _ in first }
        var upstream: [String: Set<String>] = [:]
        func collect(_ id: String) -> Set<String> {
            if let known = upstream[id] { return known }
            var all = Set<String>()
            for need in needs[id] ?? [] {
                all.insert(need)
                all.formUnion(collect(need))
            }
            upstream[id] = all
            return all
        }
        for id in ids { _ = collect(id) }
        self.upstream = upstream
        let position = position
        needPositions = ids.map { id in (needs[id] ?? []).compactMap { position[$0] } }
        upstreamPositions = ids.map { id in ids.indices.filter { upstream[id]?.contains(ids[$0]) == true } }
    }

    /// Positions of the steps not `done` whose needs are all `done` (by position), in file order.
    public func readyPositions(done: [Bool]) -> [Int] {
        ids.indices.filter { index in !done[index] && needPositions[index].allSatisfy { done[$0] } }
    }

    /// A cycle among `needs`, as the ids along it from a step back to that step, each needing the
    /// next (nil: none).
    /// Needs naming unknown steps are ignored (the loader reports those on their own).
    public static func cycle(ids: [String], needs: [String: [String]]) -> [String]? {
        enum Mark { case visiting, done }
        var marks: [String: Mark] = [:]
        var path: [String] = []
        func visit(_ id: String) -> [String]? {
            switch marks[id] {
            case .done?: return nil
            case .visiting?:
                let start = path.lastIndex(of: id) ?? 0
                return Array(path[start...]) + [id]
            case nil: break
            }
            marks[id] = .visiting
            path.append(id)
            for need in needs[id] ?? [] where needs[need] != nil || ids.contains(need) {
                if let found = visit(need) { return found }
            }
            path.removeLast()
            marks[id] = .done
            return nil
        }
        for id in ids {
            if let found = visit(id) { return found }
        }
        return nil
    }

    /// The steps by level: a step's level is one more than its deepest need's; steps of one level
    /// can run side by side. In file order within a level.
    public var levels: [[String]] {
        var level: [String: Int] = [:]
        func depth(_ id: String) -> Int {
            if let known = level[id] { return known }
            let value = (needs[id] ?? []).map { depth($0) + 1 }.max() ?? 0
            level[id] = value
            return value
        }
        var levels: [[String]] = []
        for id in ids {
            let value = depth(id)
            while levels.count <= value { levels.append([]) }
            levels[value].append(id)
        }
        return levels
    }

    /// Whether every step needs exactly the one written above it: the pipeline runs one step at a time.
    public var isChain: Bool {
        ids.enumerated().allSatisfy { index, id in (needs[id] ?? []) == (index == 0 ? [] : [ids[index - 1]]) }
    }

    /// The graph in Graphviz DOT: one node per step (labelled by `label`), an edge per need.
    public func dot(name: String, label: (String) -> String) -> String {
        func quoted(_ text: String) -> String {
            "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n") + "\""
        }
        var lines = ["digraph \(quoted(name)) {", "  rankdir=TB;", "  node [shape=box];"]
        for id in ids { lines.append("  \(quoted(id)) [label=\(quoted(label(id)))];") }
        for id in ids {
            for need in needs[id] ?? [] { lines.append("  \(quoted(need)) -> \(quoted(id));") }
        }
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }
}
