import Foundation
import Testing
import ChatCore
@testable import ChatBench
import TestSupport

@Suite struct BenchReportTests {
    func clean() -> BenchReport {
        var r = BenchReport()
        r.targets = ["127.0.0.1:8888", "[::1]:8889"]
        r.clients = 100; r.ready = 100; r.rooms = 1; r.senders = 10; r.size = 64; r.window = 32
        r.durationSeconds = 10
        r.sent = 861_000
        r.deliveredInWindow = 86_100_000
        r.expected = 86_100_000
        r.delivered = 86_100_000
        var l = LatencySummary()
        l.p50 = 3240; l.p90 = 5000; l.p99 = 11_400; l.p999 = 20_000; l.max = 31_000.5; l.n = 86_100_000
        r.latency = l
        r.connectMs = 120
        return r
    }

    @Test func aCleanRunPasses() {
        let r = clean()
        #expect(r.passed)
        #expect(r.failures.isEmpty)
        #expect(r.sentPerSecond == 86_100)
        #expect(r.deliveredPerSecond == 8_610_000)
        #expect(r.text.contains("throughput: 86.1k msg/s sent, 8.61M deliveries/s"))
        #expect(r.text.contains("p50 3.24 ms"))
        #expect(r.text.contains("p99 11.4 ms"))
        #expect(r.text.contains("\nOK: "))
    }

    @Test(arguments: ["lost", "duplicated", "reordered", "garbled", "misrouted", "badName"])
    func everyCheckFailsTheRun(_ counter: String) {
        var r = clean()
        switch counter {
        case "lost": r.lost = 3
        case "duplicated": r.duplicated = 3
        case "reordered": r.reordered = 3
        case "garbled": r.garbled = 3
        case "misrouted": r.misrouted = 3
        default: r.badName = 3
        }
        #expect(!r.passed)
        #expect(r.failures.count == 1)
        #expect(r.failures[0].hasPrefix("3 "))
        #expect(r.text.contains("FAILED: 3 "))
        #expect(!r.text.contains("\nOK: "))
    }

    @Test func disconnectsInterruptsAndNothingDeliveredFail() {
        var r = clean()
        r.errors.eof = 2
        #expect(r.failures == ["2 connection errors (eof 2)"])
        r = clean()
        r.delivered = 0
        r.deliveredInWindow = 0
        r.lost = r.expected
        #expect(r.failures.contains("no measured message was delivered"))
        r = clean()
        r.interrupted = true
        r.lost = 7  // in flight when the run was stopped: not a loss to report
        #expect(r.failures.count == 1 && r.failures[0].hasPrefix("interrupted"))
        r = clean()
        r.deadlineReached = true
        #expect(!r.passed)
    }

    @Test func jsonCarriesTheCLoadgenFieldNames() throws {
        var r = clean()
        r.lost = 5
        r.lostTail = 4
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.json.utf8)) as? [String: Any])
        for key in ["sent_per_s", "delivered_per_s", "expected", "delivered", "lost", "lost_tail", "duplicated",
                    "reordered", "garbled", "misrouted", "bad_name", "lat_us", "clients", "rooms", "senders", "size",
                    "targets", "send_targets", "window", "rate_per_sender", "duration_s", "connect_ms", "errors",
                    "error_detail", "loadgen_cpu_util", "ok", "failures"] {
            #expect(obj[key] != nil, "missing \(key)")
        }
        #expect(obj["delivered_per_s"] as? Double == 8_610_000)
        #expect(obj["lost"] as? Int == 5)
        #expect(obj["ok"] as? Bool == false)
        #expect(obj["targets"] as? [String] == ["127.0.0.1:8888", "[::1]:8889"])
        let lat = try #require(obj["lat_us"] as? [String: Any])
        #expect(lat["p50"] as? Double == 3240)
        #expect(lat["max"] as? Double == 31_000.5)
        #expect(lat["n"] as? Int == 86_100_000)
        #expect(!r.json.contains("\n"), "one line")
    }

    @Test func jsonStringsAreEscaped() {
        #expect(JSON.quoted("a\"b\\c\n\u{1}") == "\"a\\\"b\\\\c\\n\\u0001\"")
    }

    @Test func latencyComesFromTheHistogramInMicroseconds() {
        let l = LatencySummary.of(nanoseconds: (1...1000).map { UInt64($0) * 1000 })  // 1 µs … 1000 µs
        #expect(l.n == 1000)
        #expect(abs(l.p50 - 500) <= 1)
        #expect(abs(l.p99 - 990) <= 1)
        #expect(l.max == 1000)
        #expect(LatencySummary.of(nanoseconds: []) == LatencySummary())
    }

    @Test func numbersFormat() {
        #expect(Fmt.fixed(3.14159, 2) == "3.14")
        #expect(Fmt.fixed(0.005, 2) == "0.01")
        #expect(Fmt.fixed(-1.5, 1) == "-1.5")
        #expect(Fmt.fixed(12, 0) == "12")
        #expect(Fmt.si(950) == "950")
        #expect(Fmt.si(86_100) == "86.1k")
        #expect(Fmt.si(8_610_000) == "8.61M")
        #expect(Fmt.si(123_456_789) == "123M")
        #expect(Fmt.ms(3240) == "3.24")
        #expect(Fmt.ms(512) == "0.512")
    }

    @Test func theProgressLine() {
        let p = BenchProgress(elapsedSeconds: 3, phase: .measure, ready: 100, clients: 100, sentPerSecond: 86_100,
                              deliveredPerSecond: 8_610_000, p99Us: 3240)
        #expect(p.line == "t=3s measure sent=86.1k/s delivered=8.61M/s p99=3.24ms")
        let c = BenchProgress(elapsedSeconds: 1, phase: .connect, ready: 57, clients: 100, sentPerSecond: 0,
                              deliveredPerSecond: 0, p99Us: nil, errors: 2)
        #expect(c.line == "t=1s connect logged in 57/100 errors=2")
    }
}
