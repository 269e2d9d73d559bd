import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `tcp_chat bench` as a user runs it: the real binary against a real node, and against a
/// relay that breaks things on purpose, so every check is seen both passing and failing.
@Suite(.serialized) struct BenchEndToEndTests {
    func int(_ obj: [String: Any], _ key: String) -> Int { (obj[key] as? NSNumber)?.intValue ?? -1 }
    func double(_ obj: [String: Any], _ key: String) -> Double { (obj[key] as? NSNumber)?.doubleValue ?? -1 }

    @Test func measuresARealNodeAndFindsNothingWrong() throws {
        let node = try TestNode(["--rate-limit", "0"])
        let run = try runTCPChat(["bench", "--target", "127.0.0.1:\(node.port)", "--clients", "20", "--senders", "4",
                                  "--duration", "1", "--warmup", "0.5", "--json"], timeout: .seconds(30))
        let obj = try run.json()
        let context = "\(run.stdout)\n--- stderr ---\n\(run.stderr)"
        #expect(run.status == 0, "\(context)")
        #expect(int(obj, "delivered") > 0, "\(context)")
        #expect(int(obj, "delivered") == int(obj, "expected"), "\(context)")
        #expect(double(obj, "delivered_per_s") > 0, "\(context)")
        #expect(int(obj, "lost") == 0, "\(context)")
        #expect(int(obj, "duplicated") == 0, "\(context)")
        #expect(int(obj, "reordered") == 0, "\(context)")
        #expect(int(obj, "garbled") == 0 && int(obj, "misrouted") == 0 && int(obj, "bad_name") == 0, "\(context)")
        #expect(int(obj, "errors") == 0, "\(context)")
        #expect(int(obj, "clients") == 20 && int(obj, "ready") == 20 && int(obj, "senders") == 4, "\(context)")
        let lat = try #require(obj["lat_us"] as? [String: Any])
        #expect(int(lat, "n") == int(obj, "delivered"), "every measured delivery has a latency")
        #expect(double(lat, "p50") > 0 && double(lat, "p50") <= double(lat, "p99") && double(lat, "p99") <= double(lat, "max"))
        #expect(obj["ok"] as? Bool == true)
        // A progress line per second on stderr (not a TTY here: plain lines).
        #expect(run.stderr.contains("t=1s "), "\(context)")
        #expect(node.stop() == 0, "the node survived the load and stopped cleanly")
    }

    @Test func webSocketClientsMeasureARealNodeAndFindNothingWrong() throws {
        let node = try TestNode(["--rate-limit", "0"])
        let run = try runTCPChat(["bench", "--target", "127.0.0.1:\(node.port)", "--clients", "20", "--senders", "4",
                                  "--duration", "1", "--warmup", "0.5", "--json", "--no-progress", "--websocket"],
                                 timeout: .seconds(30))
        let obj = try run.json()
        let context = "\(run.stdout)\n--- stderr ---\n\(run.stderr)"
        #expect(run.status == 0, "\(context)")
        #expect(int(obj, "delivered") > 0 && int(obj, "delivered") == int(obj, "expected"), "\(context)")
        #expect(int(obj, "lost") == 0 && int(obj, "duplicated") == 0 && int(obj, "reordered") == 0, "\(context)")
        #expect(int(obj, "garbled") == 0 && int(obj, "misrouted") == 0 && int(obj, "bad_name") == 0, "\(context)")
        #expect(int(obj, "errors") == 0 && int(obj, "ready") == 20, "\(context)")
        #expect(node.stop() == 0, "the node survived the load and stopped cleanly")
    }

    @Test func webSocketModeAgainstANodeWithoutTheWebEndpointFailsAtSetup() throws {
        // A relay that speaks only the line protocol takes the request line for a login and
        // answers `403`, not `101`: no client gets past the upgrade.
        let relay = try FakeRelay(.refuse("403"))
        defer { relay.stop() }
        let run = try runTCPChat(["bench", "--target", "127.0.0.1:\(relay.port)", "--clients", "2", "--senders", "1",
                                  "--duration", "0.5", "--warmup", "0", "--connect-timeout", "3", "--no-progress", "--websocket"],
                                 timeout: .seconds(30))
        #expect(run.status == 2, "\(run.stdout)\n\(run.stderr)")
    }

    @Test func ctrlCStopsTheRunWithAPartialReport() throws {
        let node = try TestNode(["--rate-limit", "0"])
        let bench = try RunningTCPChat(["bench", "--target", "127.0.0.1:\(node.port)", "--clients", "10", "--senders", "2",
                                        "--rate", "100", "--warmup", "0", "--duration", "60"])
        #expect(bench.waitForStderr("t=1s", timeout: .seconds(10)), "no progress line within 10 s")
        bench.child.send(signal: SIGINT)
        let run = try bench.finish(timeout: .seconds(5))
        #expect(run.status == 130, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.contains("FAILED: interrupted before the end"), "\(run.stdout)")
        #expect(!run.stdout.contains("were lost"), "messages in flight at the interrupt are not reported as lost")
        #expect(node.stop() == 0)
    }

    @Test func lossIsReportedAndFailsTheRun() throws {
        let relay = try FakeRelay(.drop(every: 7))
        defer { relay.stop() }
        let run = try runTCPChat(["bench", "--target", "127.0.0.1:\(relay.port)", "--clients", "4", "--senders", "2",
                                  "--rate", "200", "--duration", "0.5", "--warmup", "0.2", "--drain", "0.5", "--json",
                                  "--no-progress"], timeout: .seconds(30))
        let obj = try run.json()
        #expect(run.status == 1, "\(run.stdout)\n\(run.stderr)")
        let expected = int(obj, "expected"), lost = int(obj, "lost")
        // Every 7th message is not relayed at all: about a seventh of the deliveries are missing.
        #expect(expected > 0 && lost > expected / 14 && lost < expected / 4, "lost \(lost) of \(expected)")
        #expect(int(obj, "duplicated") == 0 && int(obj, "reordered") == 0)
        #expect(obj["ok"] as? Bool == false)
        #expect(run.stderr.contains("FAILED: \(lost) of \(expected) expected deliveries were lost"), "\(run.stderr)")
    }

    @Test func duplicatesAreReportedInTheHumanSummary() throws {
        let relay = try FakeRelay(.duplicate(every: 5))
        defer { relay.stop() }
        let run = try runTCPChat(["bench", "--target", "127.0.0.1:\(relay.port)", "--clients", "4", "--senders", "2",
                                  "--rate", "200", "--duration", "0.5", "--warmup", "0.2", "--drain", "0.5",
                                  "--no-progress"], timeout: .seconds(30))
        #expect(run.status == 1, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.contains("lost 0, duplicated "), "\(run.stdout)")
        #expect(!run.stdout.contains("duplicated 0,"), "\(run.stdout)")
        #expect(run.stdout.contains("deliveries were duplicates"), "\(run.stdout)")
        #expect(!run.stdout.contains("OK:"))
    }

    @Test func reorderingIsReported() throws {
        let relay = try FakeRelay(.reorder(every: 5))
        defer { relay.stop() }
        let run = try runTCPChat(["bench", "--target", "127.0.0.1:\(relay.port)", "--clients", "4", "--senders", "2",
                                  "--rate", "200", "--duration", "0.5", "--warmup", "0.2", "--drain", "0.5", "--json",
                                  "--no-progress"], timeout: .seconds(30))
        let obj = try run.json()
        #expect(run.status == 1, "\(run.stdout)\n\(run.stderr)")
        #expect(int(obj, "reordered") > 0, "\(run.stdout)")
        #expect(int(obj, "duplicated") == 0, "\(run.stdout)")
        #expect(run.stderr.contains("out of their sender's order"), "\(run.stderr)")
    }

    @Test func aRefusedLoginStopsTheRunWithItsReason() throws {
        let relay = try FakeRelay(.refuse("403"))
        defer { relay.stop() }
        let run = try runTCPChat(["bench", "--target", "127.0.0.1:\(relay.port)", "--clients", "3", "--duration", "1"],
                                 timeout: .seconds(30))
        #expect(run.status == 2)
        #expect(run.stderr.contains("refused the login of bench"), "\(run.stderr)")
        #expect(run.stderr.contains("403"), "\(run.stderr)")
        #expect(run.stdout.isEmpty)
    }

    @Test func nothingListeningIsAClearConnectFailure() throws {
        // A port that was free a moment ago.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        let port = Int(UInt16(bigEndian: addr.sin_port))
        close(fd)
        let started = ContinuousClock.now
        let run = try runTCPChat(["bench", "--target", "127.0.0.1:\(port)", "--connect-timeout", "3"], timeout: .seconds(20))
        #expect(run.status == 2)
        #expect(run.stderr.contains("cannot connect to 127.0.0.1:\(port)"), "\(run.stderr)")
        #expect(run.stderr.contains("refused"), "\(run.stderr)")
        #expect(ContinuousClock.now - started < .seconds(3), "a refused connection is not waited out")
    }

    @Test func badOptionsAreRefusedBeforeConnecting() throws {
        let run = try runTCPChat(["bench", "--size", "10", "--target", "127.0.0.1:1"], timeout: .seconds(20))
        #expect(run.status != 0 && run.status != 1)
        #expect(run.stderr.contains("--size must be 37"), "\(run.stderr)")
    }
}
