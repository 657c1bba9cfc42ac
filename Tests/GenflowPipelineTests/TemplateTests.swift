import GenflowCore
import GenflowPipeline
import Testing

@Suite("Templates and references")
struct TemplateTests {
    let scope: JSON = [
        "input": ["instructions": "a <b> & \"c\"", "style": "modern", "n": 2, "tags": ["x", "y"]],
        "steps": ["generate": ["output": ["text": "[...]", "usage": ["total_tokens": 1234], "objects": [["id": "a"], ["id": "b"]]]]],
        "job": ["id": "j1", "user_id": "u1", "pipeline": "canvas-generation"],
    ]

    func render(_ value: JSON) throws -> JSON {
        try ValueTemplate.compile(value).render(scope)
    }

    @Test("a value that is exactly one reference keeps the referenced JSON type")
    func singleReferenceKeepsType() throws {
        #expect(try render("{{steps.generate.output.usage.total_tokens}}") == .int(1234))
        #expect(try render("  {{ steps.generate.output.objects }} ") == [["id": "a"], ["id": "b"]])
        #expect(try render("{{{input.n}}}") == .int(2))
        #expect(try render("{{input.missing}}") == .null)
        // A transform renders text: the value is not the bare reference.
        #expect(try render("{{uppercased(input.style)}}") == "MODERN")
    }

    @Test("mixed text renders as a string, without HTML escaping")
    func mixedText() throws {
        #expect(try render("Draw: {{input.instructions}}. Style: {{input.style}}.") == "Draw: a <b> & \"c\". Style: modern.")
        #expect(try render("n={{input.n}} tokens={{steps.generate.output.usage.total_tokens}}") == "n=2 tokens=1234")
        #expect(try render("job {{job.id}} for {{job.user_id}}") == "job j1 for u1")
    }

    @Test("objects and lists inside text render as JSON, not Swift descriptions")
    func containersAsJSON() throws {
        #expect(try render("usage: {{steps.generate.output.usage}}") == #"usage: {"total_tokens":1234}"#)
        #expect(try render("tags: {{input.tags}}") == #"tags: ["x","y"]"#)
    }

    @Test("sections iterate lists and test values")
    func sections() throws {
        #expect(try render("{{#input.tags}}[{{.}}]{{/input.tags}}") == "[x][y]")
        #expect(try render("{{#input.missing}}yes{{/input.missing}}{{^input.missing}}no{{/input.missing}}") == "no")
    }

    @Test("templates inside nested objects and lists render; literals stay untouched")
    func nested() throws {
        let value: JSON = ["event": "done", "data": ["objects": "{{steps.generate.output.objects}}", "count": 3, "note": "for {{job.user_id}}"]]
        #expect(try render(value) == [
            "event": "done", "data": ["objects": [["id": "a"], ["id": "b"]], "count": 3, "note": "for u1"],
        ])
    }

    @Test("the scanner finds tags with their offsets and section depth")
    func scanner() throws {
        let tags = try TemplateScanner.tags(in: "a {{x.y}} {{#list}}{{.}}{{/list}} {{! comment }}")
        #expect(tags.map(\.name) == ["x.y", "list", ".", "list"])
        #expect(tags.map(\.offset) == [2, 10, 19, 24])
        #expect(tags.map(\.depth) == [0, 0, 1, 0])
        #expect(TemplateScanner.singleReference(in: "{{a}} {{b}}") == nil)
        #expect(TemplateScanner.singleReference(in: "{{a}}!") == nil)
        #expect(TemplateScanner.singleReference(in: " {{ a.b }} ") == "a.b")
    }

    @Test("malformed templates are refused", arguments: ["{{a", "{{#a}}x", "{{/a}}", "{{#a}}{{/b}}", "{{=<% %>=}}", "{{> p}}", "{{a b}}", "{{}}"])
    func malformed(text: String) {
        #expect(throws: TemplateScanner.SyntaxError.self) { try ValueTemplate.compile(.string(text)) }
    }
}

@Suite("Input schema")
struct InputSchemaTests {
    @Test("job input is checked against the pipeline's schema, defaults filled in")
    func input() throws {
        let pipeline = try loader.load(file: "pipelines/image-generation.yaml")
        #expect(pipeline.input.violations(of: ["prompt": "a cat"]) == [])
        #expect(pipeline.input.applyingDefaults(to: ["prompt": "a cat"]) == [
            "prompt": "a cat", "style": "natural", "aspect_ratio": "1:1", "quality": "standard", "format": "png", "n": 1,
        ])
        let problems = pipeline.input.violations(of: ["prompt": "", "n": 9, "aspect_ratio": "2:1", "colour": "red"]).map(\.description)
        #expect(problems == [
            "aspect_ratio: must be one of \"1:1\", \"16:9\", \"9:16\", \"4:3\", \"3:4\", not \"2:1\"; did you mean '1:1'?",
            "colour: unknown key 'colour' (known keys: prompt, style, aspect_ratio, quality, format, dataset_id, n)",
            "n: must be at most 4, not 9",
            "prompt: must not be empty",
        ])
        #expect(pipeline.input.violations(of: ["n": 1]).map(\.description) == ["missing required key 'prompt'"])
        #expect(pipeline.input.violations(of: "just text").map(\.description) == ["must be an object, not the string \"just text\""])
    }
}
