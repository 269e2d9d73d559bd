import Testing
@testable import ChatBench
import ChatCore
import TestSupport

@Suite struct BenchConfigurationTests {
    @Test func hostPortParsing() {
        #expect(HostPort("localhost:8888").map { [$0.host, "\($0.port)"] } == ["localhost", "8888"])
        #expect(HostPort("[::1]:9").map { [$0.host, "\($0.port)"] } == ["::1", "9"])
        #expect(HostPort("[::1]:9")?.description == "[::1]:9")
        for bad in ["localhost", ":8888", "host:0", "host:65536", "::1:8888", "[::1]", "[]:1", "host:x"] {
            #expect(HostPort(bad) == nil, "\(bad)")
        }
    }

    @Test func theDefaultsAreTheFanoutScenario() {
        let c = BenchConfiguration()
        #expect(c.problems().isEmpty)
        #expect((c.clients, c.rooms, c.senders, c.size, c.rate, c.window) == (100, 1, 10, 64, 0, 32))
        #expect(c.hardDeadlineSeconds == 2 + 10 + 2 + 10 + 10)
    }

    @Test func sendersAreCountedPerRoomAndCappedAtTheRoomSize() {
        var c = BenchConfiguration()
        c.clients = 1000; c.rooms = 100; c.senders = 50
        #expect(c.roomSize == 10)
        #expect(c.sendersPerRoom == 10)
    }

    @Test func badSettingsAreExplained() {
        var c = BenchConfiguration()
        c.size = 36
        c.targets = ["nope"]
        c.namePrefix = "a_b"
        c.duration = 0
        let p = c.problems()
        #expect(p.count == 4)
        #expect(p.contains { $0.contains("--size") })
        #expect(p.contains { $0.contains("'nope'") })
        #expect(p.contains { $0.contains("--name-prefix") })
        #expect(p.contains { $0.contains("--duration") })
        var long = BenchConfiguration()
        long.namePrefix = String(repeating: "a", count: 31)  // + "99" is 33 characters
        #expect(!long.problems().isEmpty)
    }
}
