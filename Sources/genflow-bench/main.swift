// genflow-bench BASE_URL CONCURRENCY [ROUNDS]
//
// The client half of bench/model-concurrency: CONCURRENCY chat completions started at once through
// one `HTTPClient` (libcurl multi, one thread) and one `OpenAIProvider`, as `call_model` makes them,
// each with a 30 s timeout. With ROUNDS > 1 (default 1), each of the CONCURRENCY tasks makes its
// next call as soon as the previous one is answered, so CONCURRENCY calls stay in flight for ROUNDS
// round trips. Every call must come back as a finished completion with text, or the command fails.
//
// Prints one line: `genflow-client <concurrency> <rounds> <calls> <seconds> <errors> <p50_seconds>
// <max_seconds> <idle_rss_mib> <peak_rss_mib> <cpu_seconds> <busiest_thread_cpu_seconds>`: wall
// time from the first call started to the last answer, single-call latencies, this process's
// resident memory before the calls and at its peak (VmHWM), the CPU time (user + system) of the
// whole process and of its busiest thread (the curl thread, in practice). The first errors, with
// their count per message, go to stderr.
import Foundation
import GenflowCore
import GenflowHTTPClient
import GenflowProviders

/// One call's outcome: its latency, or why it failed.
enum Outcome: Sendable {
    case answered(Duration)
    case failed(String)
}

/// A `VmRSS`/`VmHWM` line of /proc/self/status, in MiB.
func residentMiB(_ field: String) -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix(field + ":") {
        let kib = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Double($0) } ?? 0
        return kib / 1024
    }
    return 0
}

/// CPU seconds (user + system) of the whole process (getrusage) and of its busiest live thread (/proc).
func cpuSeconds() -> (process: Double, busiestThread: Double) {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    let total = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    var busiest = 0.0
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
    for task in tasks {
        guard let stat = try? String(contentsOfFile: "/proc/self/task/\(task)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { continue }
        // After the command name: state is field 3, utime field 14, stime field 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { continue }
        busiest = max(busiest, (user + system) / ticks)
    }
    return (total, busiest)
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("genflow-bench: \(message)\n".utf8))
    exit(1)
}

let arguments = CommandLine.arguments
guard arguments.count >= 3, let concurrency = Int(arguments[2]), concurrency > 0,
      let rounds = arguments.count > 3 ? Int(arguments[3]) : 1, rounds > 0 else {
    fail("usage: genflow-bench BASE_URL CONCURRENCY [ROUNDS]  (e.g. http://127.0.0.1:8080/v1 2000)")
}
let baseURL = arguments[1]
let calls = concurrency * rounds
let timeout = Duration.seconds(30)

let http = HTTPClientSource()
let provider = OpenAIProvider(http: http, baseURL: baseURL, apiKey: nil)
let idleRSS = residentMiB("VmRSS")

let clock = ContinuousClock()
let started = clock.now
let outcomes = await withTaskGroup(of: [Outcome].self, returning: [Outcome].self) { group in
    for worker in 0..<concurrency {
        group.addTask {
            var outcomes: [Outcome] = []
            for round in 0..<rounds {
                let content = JSON.string("call \(worker) round \(round)")
                let request = ChatRequest(model: "bench", messages: [["role": "user", "content": content]], stream: false)
                let callStarted = clock.now
                do {
                    let result = try await provider.chat(request, timeout: timeout)
                    if !result.text.isEmpty, result.finishReason == "stop" {
                        outcomes.append(.answered(clock.now - callStarted))
                    } else {
                        outcomes.append(.failed("not a finished completion: finish_reason \(result.finishReason), \(result.text.count) characters"))
                    }
                } catch {
                    outcomes.append(.failed("\(error)"))
                }
            }
            return outcomes
        }
    }
    var outcomes: [Outcome] = []
    outcomes.reserveCapacity(calls)
    for await batch in group { outcomes += batch }
    return outcomes
}
let elapsed = clock.now - started
let peakRSS = residentMiB("VmHWM")
let cpu = cpuSeconds()
http.client.close()

var latencies: [Double] = []
var errors: [String: Int] = [:]
for outcome in outcomes {
    switch outcome {
    case .answered(let latency): latencies.append(Double(latency.components.seconds) + Double(latency.components.attoseconds) / 1e18)
    case .failed(let message): errors[message, default: 0] += 1
    }
}
latencies.sort()
let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
let failed = calls - latencies.count
for (message, count) in errors.sorted(by: { $0.value > $1.value }).prefix(5) {
    FileHandle.standardError.write(Data("genflow-bench: \(count) x \(message)\n".utf8))
}
let p50 = latencies.isEmpty ? 0 : latencies[latencies.count / 2]
print(String(
    format: "genflow-client %d %d %d %.3f %d %.3f %.3f %.1f %.1f %.2f %.2f", concurrency, rounds, calls, seconds, failed, p50,
    latencies.last ?? 0, idleRSS, peakRSS, cpu.process, cpu.busiestThread
))
exit(failed == 0 ? 0 : 1)
