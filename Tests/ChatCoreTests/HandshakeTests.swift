import Testing
@testable import ChatCore

@Suite struct HandshakeTests {
    func parse(_ s: String) -> Handshake { Handshake.parse(Array(s.utf8)) }

    @Test func acceptsUserAndChat() {
        guard case .client(let u, let c) = parse("Alice_Room/1") else { Issue.record("not accepted"); return }
        #expect(u.display == "Alice")
        #expect(u.key == "alice")
        #expect(c.display == "Room/1")
        #expect(c.key == "room/1")
    }

    @Test(arguments: ["alice", "_room", "alice_", "a_b_c", "al ice_room", "alice_ro-om", "ålice_room", "", "_"])
    func rejectsMalformed(_ s: String) {
        #expect(parse(s) == .malformed)
    }

    @Test func enforcesNameLengths() {
        #expect(parse(String(repeating: "a", count: 32) + "_r") != .malformed)
        #expect(parse(String(repeating: "a", count: 33) + "_r") == .malformed)
        #expect(parse("a_" + String(repeating: "r", count: 64)) != .malformed)
        #expect(parse("a_" + String(repeating: "r", count: 65)) == .malformed)
    }

    @Test func namesCompareWithoutCase() {
        #expect(ChatName("ALICE", maxLength: 32) == ChatName("alice", maxLength: 32))
        #expect(ChatName("ALICE", maxLength: 32)?.display == "ALICE")
    }

    @Test func peerHandshakeIsNeverAClientHandshake() {
        guard case .peer = parse("TCPCHAT-PEER/2 node-a 127.0.0.1:8888") else { Issue.record("not a peer line"); return }
        // The prefix alone holds `-` and `/`: it cannot be a client handshake either.
        #expect(parse("TCPCHAT-PEER_x") == .malformed)
    }
}
