import Testing
@testable import ChatCore

/// The peer handshake's proofs cover the transport's channel binding (a TLS exporter value,
/// docs/tls.md and docs/cluster-protocol.md §3): a proof made inside one TLS session fails in
/// any other, so a relay that terminates TLS with each node cannot pass proofs through.
@Suite struct ChannelBindingTests {
    static let a = NodeID("aaaaaaaaaaaaaaa1")!
    static let b = NodeID("bbbbbbbbbbbbbbb2")!
    static let sessionX: [UInt8] = (0..<32).map { UInt8($0) }
    static let sessionY: [UInt8] = (0..<32).map { UInt8(255 - $0) }

    static func side(_ me: NodeID, nonce: String, binding: [UInt8]) -> PeerHandshake {
        PeerHandshake(me: me, advertise: me == a ? "10.0.0.1:8888" : "10.0.0.2:9999",
                      secret: Array("cluster secret".utf8), nonce: nonce, binding: binding)
    }

    @Test func bothEndsOfOneSessionEstablish() {
        let (d, c) = PeerHandshakeTests.run(dialer: Self.side(Self.a, nonce: "n1", binding: Self.sessionX),
                                            acceptor: Self.side(Self.b, nonce: "n2", binding: Self.sessionX))
        #expect(d.outcome == .established(node: Self.b, advertise: "10.0.0.2:9999"))
        #expect(c.outcome == .established(node: Self.a, advertise: "10.0.0.1:8888"))
    }

    @Test func aProofRelayedIntoAnotherSessionIsRefused() {
        // A relay holds TLS session X with the dialer and session Y with the acceptor and
        // passes every line through unchanged: the dialer's proof covers X, the acceptor
        // checks it against Y.
        let (d, c) = PeerHandshakeTests.run(dialer: Self.side(Self.a, nonce: "n1", binding: Self.sessionX),
                                            acceptor: Self.side(Self.b, nonce: "n2", binding: Self.sessionY))
        #expect(c.outcome == .failed(reason: "wrong cluster secret proof"))
        #expect(c.errorsSent == ["wrong cluster secret proof"])
        if case .established = d.outcome { Issue.record("the dialer opened a link through a relay") }
    }

    @Test func aTLSProofDoesNotCheckOnPlainTCP() {
        // A proof from a TLS session is no good on a plaintext connection (empty binding).
        let (_, c) = PeerHandshakeTests.run(dialer: Self.side(Self.a, nonce: "n1", binding: Self.sessionX),
                                            acceptor: Self.side(Self.b, nonce: "n2", binding: []))
        #expect(c.outcome == .failed(reason: "wrong cluster secret proof"))
    }

    @Test func theBindingChangesTheProof() {
        let key = Array("cluster secret".utf8)
        let x = PeerHandshake.proof(key: .init(data: key), role: .dialer, dialerNonce: "n1", acceptorNonce: "n2",
                                    dialer: Self.a, acceptor: Self.b, binding: Self.sessionX)
        let y = PeerHandshake.proof(key: .init(data: key), role: .dialer, dialerNonce: "n1", acceptorNonce: "n2",
                                    dialer: Self.a, acceptor: Self.b, binding: Self.sessionY)
        #expect(x != y && x.count == 64 && y.count == 64)
    }
}
