// Pipelines several suites run.

/// Three steps that each sleep `input.ms` (300 ms by default).
package let sleepy = """
    name: sleepy
    input:
      properties:
        ms: {type: string, default: 300ms}
    steps:
      - id: one
        stage: test.step
        with: {sleep: "{{input.ms}}"}
      - id: two
        stage: test.step
        with: {sleep: "{{input.ms}}"}
      - id: three
        stage: test.step
        with: {sleep: "{{input.ms}}"}
    """

/// One step that sleeps (`input.sleep`, 30 s by default) and records its start: a step with an outside effect.
package let sleeper = """
    name: sleeper
    steps:
      - id: nap
        stage: test.step
        with: {sleep: "{{input.sleep}}", record: "{{input.record}}"}
    input:
      properties:
        sleep: {type: string, default: 30s}
        record: {type: string, default: /dev/null}
    """
