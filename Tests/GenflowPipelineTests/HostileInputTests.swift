import Testing

/// Inputs `genflow-fuzz` (make faults) found crashing or stalling the loader; each is a clear
/// error now, at its place.
@Suite("Hostile pipeline files")
struct HostileInputTests {
    @Test("lists nested 5,000 deep: an error at the 129th level, not a stack overflow")
    func deepNesting() {
        let yaml = "name: deep\nsteps: " + String(repeating: "[", count: 5_000) + String(repeating: "]", count: 5_000) + "\n"
        #expect(diagnostics(yaml) == ["p.yaml:2:135: error: lists and mappings nested deeper than 128 levels"])
    }

    @Test("template sections nested 1,000 deep, 2,000 tags, or 200,000 characters: refused at load time")
    func templateBounds() {
        func pipeline(_ template: String) -> String {
            "name: t\nsteps:\n  - id: a\n    stage: prepare_instructions\n    with: {template: \"\(template)\"}\n"
        }
        let sections = String(repeating: "{{#input.x}}", count: 1_000) + String(repeating: "{{/input.x}}", count: 1_000)
        #expect(diagnostics(pipeline(sections)).first?.hasSuffix("error: sections nested deeper than 32 levels") == true, "\(diagnostics(pipeline(sections)).prefix(2))")
        let tags = String(repeating: "{{input.x}}", count: 2_000)
        #expect(diagnostics(pipeline(tags)).first?.hasSuffix("error: more than 1000 tags in one template") == true)
        let long = String(repeating: "a", count: 200_000) + "{{input.x}}"
        #expect(diagnostics(pipeline(long)).first?.contains("templates may have at most 32000") == true)
    }

    @Test("a value with many bad references reports the first ten and a count")
    func manyBadReferences() {
        let yaml = "name: t\nsteps:\n  - id: a\n    stage: prepare_instructions\n    with: {template: \"" + String(repeating: "{{steps.a.output}}", count: 50) + "\"}\n"
        let found = diagnostics(yaml)
        #expect(found.count == 11 && found.last == "p.yaml:5:203: error: … and 40 more problems with references in this value, from here", "\(found)")
    }

    @Test("a tag padded with 20,000 spaces and a 200,000-character stage name are read (both were quadratic; genflow-fuzz measures the time)")
    func quadraticInputs() {
        let padded = "name: t\nsteps:\n  - id: a\n    stage: prepare_instructions\n    with: {template: \"{{job.id" + String(repeating: " ", count: 20_000) + "}}\"}\n"
        #expect(diagnostics(padded).isEmpty)
        let long = "name: t\nsteps:\n  - id: a\n    stage: " + String(repeating: "x", count: 200_000) + "\n"
        #expect(diagnostics(long).first?.contains("unknown stage") == true)
    }
}
