import GenflowCore
import GenflowPipeline
import Testing

/// A pipeline of `notify` steps (any stage would do) with the given step lines after `steps:`.
private func graphYAML(_ steps: String) -> String {
    "name: g\ninput:\n  properties:\n    n: {type: integer}\n    list: {type: array}\nsteps:\n" + steps
}

private func load(_ steps: String) throws -> Pipeline {
    try loader.load(source: graphYAML(steps), file: "p.yaml")
}

@Suite("Pipeline graphs: needs, for_each, continue_on_error")
struct StepGraphTests {
    /// A fan-out and fan-in: a; b and c need a; d needs b and c; e (no needs) follows d.
    let diamond = """
          - {id: a, stage: notify, with: {event: x}}
          - {id: b, stage: notify, needs: [a], with: {event: x, data: {v: "{{steps.a.output}}"}}}
          - {id: c, stage: notify, needs: a, with: {event: x}}
          - {id: d, stage: notify, needs: [b, c], with: {event: x, data: {v: "{{steps.a.output.event}} {{steps.c.output}}"}}}
          - {id: e, stage: notify, with: {event: x, data: {v: "{{steps.b.output}}"}}}
        """

    @Test("a step without needs follows the one above it; needs make a graph with levels, upstream sets and ready steps")
    func graph() throws {
        let pipeline = try load(diamond)
        let graph = pipeline.graph
        #expect(pipeline.steps.map(\.needs) == [[], ["a"], ["a"], ["b", "c"], ["d"]])
        #expect(graph.levels == [["a"], ["b", "c"], ["d"], ["e"]])
        #expect(graph.upstream["e"] == ["a", "b", "c", "d"])
        #expect(graph.upstreamPositions[graph.position["d"]!] == [0, 1, 2])
        /// The steps ready once `done` completed.
        func ready(_ done: Set<String>) -> [String] {
            graph.readyPositions(done: graph.ids.map(done.contains)).map { graph.ids[$0] }
        }
        #expect(ready([]) == ["a"])
        #expect(ready(["a"]) == ["b", "c"])
        #expect(ready(["a", "b"]) == ["c"])
        #expect(ready(["a", "b", "c"]) == ["d"])
        #expect(graph.isChain == false)
        #expect(try load("  - {id: a, stage: notify, with: {event: x}}\n  - {id: b, stage: notify, with: {event: x}}").graph.isChain)
    }

    @Test("the graph as DOT: a node per step, an edge per need")
    func dot() throws {
        let dot = try load(diamond).graph.dot(name: "g") { "\($0)\nnotify" }
        #expect(dot.hasPrefix("digraph \"g\" {\n"))
        #expect(dot.contains("  \"a\" [label=\"a\\nnotify\"];"))
        for edge in ["a\" -> \"b", "a\" -> \"c", "b\" -> \"d", "c\" -> \"d", "d\" -> \"e"] { #expect(dot.contains("\"\(edge)\";"), "\(edge)") }
        #expect(dot.components(separatedBy: " -> ").count - 1 == 5)
    }

    @Test("unknown, repeated and self needs, and a cycle, each with file:line:col; the cycle is printed")
    func badNeeds() {
        #expect(diagnostics(graphYAML("""
              - {id: a, stage: notify, with: {event: x}}
              - {id: b, stage: notify, needs: [a, a, bb, b], with: {event: x}}
            """)) == [
            "p.yaml:8:39: error: step 'a' is named twice in needs",
            "p.yaml:8:42: error: unknown step 'bb' in needs (steps: a, b)",
            "p.yaml:8:46: error: step 'b' cannot need itself",
        ])
        #expect(diagnostics(graphYAML("""
              - {id: a, stage: notify, needs: [c], with: {event: x}}
              - {id: b, stage: notify, with: {event: x}}
              - {id: c, stage: notify, needs: [b], with: {event: x}}
            """)) == [
            "p.yaml:7:35: error: the steps' needs form a cycle: a needs c needs b needs a; no step of it could ever run",
        ])
    }

    @Test("a reference must go upstream: a parallel branch's output is refused, with what is upstream")
    func upstreamReferences() {
        let yaml = graphYAML("""
              - {id: a, stage: notify, with: {event: x}}
              - {id: b, stage: notify, needs: [a], with: {event: x}}
              - {id: c, stage: notify, needs: [a], with: {event: x, data: {v: "{{steps.b.output}}"}}}
              - {id: d, stage: notify, needs: [c], on_invalid: {retry_step: b}, with: {event: x}}
            """)
        #expect(diagnostics(yaml) == [
            "p.yaml:9:68: error: '{{steps.b.output}}': step 'b' is not upstream of this step, so its output may not exist when this step runs; add it to needs (upstream of this step: a)",
            "p.yaml:10:65: error: 'b': step 'b' is not upstream of this step, so its output may not exist when this step runs; add it to needs (upstream of this step: a, c)",
        ])
    }

    @Test("for_each takes a list, a number or a reference; item and index mean something only there; max_parallel only with it")
    func forEach() throws {
        let pipeline = try load("""
              - {id: a, stage: notify, for_each: "{{input.list}}", max_parallel: 3, with: {event: x, data: {i: "{{index}}", v: "{{item.name}}"}}}
              - {id: b, stage: notify, for_each: 4, with: {event: x, data: {i: "{{item}}"}}}
              - {id: c, stage: notify, for_each: [x, y], continue_on_error: true, with: {event: x}}
            """)
        #expect(pipeline.steps.map { $0.forEach?.maxParallel } == [3, ForEach.defaultMaxParallel, ForEach.defaultMaxParallel])
        #expect(pipeline.steps.map(\.continueOnError) == [false, false, true])
        #expect(diagnostics(graphYAML("""
              - {id: a, stage: notify, with: {event: x, data: {i: "{{index}}"}}}
              - {id: b, stage: notify, max_parallel: 2, with: {event: x}}
              - {id: c, stage: notify, for_each: "all of them", with: {event: x}}
              - {id: d, stage: notify, for_each: {a: 1}, with: {event: x}}
              - {id: e, stage: notify, for_each: "{{steps.zz.output}}", max_parallel: 0, continue_on_error: maybe, with: {event: x, data: {i: "{{index.x}}"}}}
            """)) == [
            "p.yaml:7:56: error: '{{index}}' only means something in a step with for_each (it is the item that step runs for)",
            "p.yaml:8:28: error: 'max_parallel' of step 'b' only applies to a step with 'for_each'",
            "p.yaml:9:38: error: 'for_each' of step 'c' must be a list, a number or a '{{reference}}' to one, not the text 'all of them'",
            "p.yaml:10:38: error: 'for_each' of step 'd' must be a list, a number or a '{{reference}}' to one, not a mapping",
            "p.yaml:11:39: error: unknown step 'zz' in '{{steps.zz.output}}' (upstream of this step: a, b, c, d)",
            "p.yaml:11:75: error: 'max_parallel' must be between 1 and 1000, not 0",
            "p.yaml:11:97: error: 'continue_on_error' must be true or false, not 'maybe'",
            "p.yaml:11:132: error: '{{index.x}}': the index is a number, it has no fields",
        ])
    }

    @Test("for_each items: a list as it is, a number n as 0..<n; anything else is a clear error")
    func items() throws {
        #expect(try ForEach.items(of: ["a", "b"]).get() == ["a", "b"])
        #expect(try ForEach.items(of: 3).get() == [0, 1, 2])
        #expect(try ForEach.items(of: .double(2)).get() == [0, 1])
        #expect(try ForEach.items(of: []).get() == [])
        for bad: JSON in ["text", -1, .double(1.5), 10_001, ["k": 1], .null] {
            guard case .failure(let error) = ForEach.items(of: bad) else {
                Issue.record("\(bad) gave items")
                continue
            }
            #expect(error.errorClass == .invalidRequest)
        }
    }
}
