import Testing
@testable import ChatCore

/// Opening a peer link (PeerHandshake.swift): HELLO both ways, then, with a cluster
/// secret, an HMAC proof over the other end's nonce.
@Suite struct PeerHandshakeTests {
    static let a = NodeID("aaaaaaaaaaaaaaa1")!
    static let b = NodeID("bbbbbbbbbbbbbbb2")!

    struct Side {
        var hs: PeerHandshake
        var outcome: PeerHandshake.Outcome = .waiting
        var errorsSent: [String] = []
        var closed: Bool {
            if case .waiting = outcome { return false }
            if case .established = outcome { return false }
            return true
        }
    }

    /// Runs a dialer against an acceptor until both are quiet, passing every message
    /// through the line codec as the runtime does. A side that failed sends its ERROR and
    /// closes: nothing more reaches it.
    static func run(dialer: PeerHandshake, acceptor: PeerHandshake) -> (dialer: Side, acceptor: Side) {
        var sides = [Side(hs: dialer), Side(hs: acceptor)]
        var queues: [[String]] = [[], []]     // queues[i]: lines on their way to side i
        queues[1] = sides[0].hs.start().map(\.encoded)
        var progressed = true
        while progressed {
            progressed = false
            for i in 0..<2 where !queues[i].isEmpty {
                progressed = true
                let line = queues[i].removeFirst()
                if sides[i].closed { continue }
                guard let msg = try? PeerMessage.decode(line) else {
                    Issue.record("undecodable handshake line \(line)")
                    continue
                }
                let (send, outcome) = sides[i].hs.receive(msg)
                if case .waiting = outcome {} else { sides[i].outcome = outcome }
                for m in send {
                    if case .error(let reason) = m { sides[i].errorsSent.append(reason) }
                    queues[1 - i].append(m.encoded)
                }
            }
        }
        return (sides[0], sides[1])
    }

    static func hs(_ me: NodeID, _ secret: String?, nonce: String) -> PeerHandshake {
        PeerHandshake(me: me, advertise: me == a ? "10.0.0.1:8888" : "10.0.0.2:9999", secret: secret.map { Array($0.utf8) }, nonce: nonce)
    }

    @Test func openToOpenEstablishesBothWays() {
        let (d, c) = Self.run(dialer: Self.hs(Self.a, nil, nonce: "n1"), acceptor: Self.hs(Self.b, nil, nonce: "n2"))
        #expect(d.outcome == .established(node: Self.b, advertise: "10.0.0.2:9999"))
        #expect(c.outcome == .established(node: Self.a, advertise: "10.0.0.1:8888"))
        #expect(d.errorsSent.isEmpty && c.errorsSent.isEmpty)
        #expect(d.hs.peer?.node == Self.b && c.hs.peer?.node == Self.a)
    }

    @Test(arguments: ["s3cret", "", "a much longer secret with spaces and ünïcödé"])
    func sameSecretEstablishesBothWays(secret: String) {
        let (d, c) = Self.run(dialer: Self.hs(Self.a, secret, nonce: "n1"), acceptor: Self.hs(Self.b, secret, nonce: "n2"))
        #expect(d.outcome == .established(node: Self.b, advertise: "10.0.0.2:9999"))
        #expect(c.outcome == .established(node: Self.a, advertise: "10.0.0.1:8888"))
        #expect(d.errorsSent.isEmpty && c.errorsSent.isEmpty)
    }

    @Test func wrongSecretFailsWithAnError() {
        let (d, c) = Self.run(dialer: Self.hs(Self.a, "alpha", nonce: "n1"), acceptor: Self.hs(Self.b, "omega", nonce: "n2"))
        for s in [d, c] {
            if case .established = s.outcome { Issue.record("established with a wrong secret") }
        }
        #expect(!d.errorsSent.isEmpty || !c.errorsSent.isEmpty)
        #expect(d.closed && c.closed)
        // No ERROR gives a secret away.
        for e in d.errorsSent + c.errorsSent { #expect(!e.contains("alpha") && !e.contains("omega")) }
    }

    /// The AUTH a prover sends after the verifier's HELLO carrying `nonce`.
    static func proof(by prover: NodeID, for verifier: NodeID, secret: String, nonce: String) -> String? {
        var h = hs(prover, secret, nonce: "prover-nonce")
        _ = h.start()
        let (out, _) = h.receive(.hello(node: verifier, advertise: "10.0.0.9:1", nonce: nonce, secret: true))
        if case .auth(let p)? = out.last { return p }
        return nil
    }

    @Test func aProofIsNotTheSecretAndDependsOnNonceDirectionAndSecret() throws {
        let p = try #require(Self.proof(by: Self.a, for: Self.b, secret: "s3cret", nonce: "n"))
        #expect(p.count == 64 && p.allSatisfy { $0.isHexDigit && !$0.isUppercase })
        #expect(!p.contains("s3cret"))
        #expect(p != Self.proof(by: Self.a, for: Self.b, secret: "s3cret", nonce: "m"))
        #expect(p != Self.proof(by: Self.b, for: Self.a, secret: "s3cret", nonce: "n"))
        #expect(p != Self.proof(by: Self.a, for: Self.b, secret: "other", nonce: "n"))
        #expect(p == Self.proof(by: Self.a, for: Self.b, secret: "s3cret", nonce: "n"))
    }

    @Test func replayedOrReflectedProofIsRefused() throws {
        let hello = PeerMessage.hello(node: Self.a, advertise: "10.0.0.1:8888", nonce: "n1", secret: true)
        // The right proof for this link's nonce is accepted...
        var good = Self.hs(Self.b, "s3cret", nonce: "fresh")
        _ = good.receive(hello)
        let right = try #require(Self.proof(by: Self.a, for: Self.b, secret: "s3cret", nonce: "fresh"))
        do { let v = good.receive(.auth(proof: right)).outcome; #expect(v == .established(node: Self.a, advertise: "10.0.0.1:8888")) }
        // ...one recorded on an earlier link (another nonce) is not.
        var acceptor = Self.hs(Self.b, "s3cret", nonce: "fresh")
        _ = acceptor.receive(hello)
        let recorded = try #require(Self.proof(by: Self.a, for: Self.b, secret: "s3cret", nonce: "old"))
        let (send, outcome) = acceptor.receive(.auth(proof: recorded))
        #expect(outcome == .failed(reason: "wrong cluster secret proof"))
        #expect(send.contains { if case .error = $0 { return true } else { return false } })
        // Nor is its own proof sent back to it.
        var other = Self.hs(Self.b, "s3cret", nonce: "fresh")
        let (out, _) = other.receive(.hello(node: Self.a, advertise: "10.0.0.1:8888", nonce: "fresh", secret: true))
        guard case .auth(let own)? = out.last else { Issue.record("no AUTH sent"); return }
        if case .established = other.receive(.auth(proof: own)).outcome { Issue.record("accepted its own proof reflected back") }
    }

    @Test func secretAgainstOpenIsRefusedInBothDirections() {
        for (dialerSecret, acceptorSecret) in [("s", nil), (nil, "s")] as [(String?, String?)] {
            let (d, c) = Self.run(dialer: Self.hs(Self.a, dialerSecret, nonce: "n1"), acceptor: Self.hs(Self.b, acceptorSecret, nonce: "n2"))
            let ctx = "dialer \(dialerSecret ?? "open"), acceptor \(acceptorSecret ?? "open")"
            for s in [d, c] {
                if case .established = s.outcome { Issue.record("\(ctx): established") }
            }
            #expect(c.errorsSent.count == 1, "\(ctx)")
            #expect(d.closed && c.closed, "\(ctx)")
        }
        // And the dialing end refuses on its own, should the other end not.
        for (mine, theirs) in [("s", false), (nil, true)] as [(String?, Bool)] {
            var dialer = Self.hs(Self.a, mine, nonce: "n1")
            _ = dialer.start()
            let (send, outcome) = dialer.receive(.hello(node: Self.b, advertise: "10.0.0.2:9999", nonce: "n2", secret: theirs))
            guard case .failed = outcome else { Issue.record("dialer \(mine ?? "open") accepted secret=\(theirs)"); continue }
            #expect(send.count == 1)
        }
    }

    @Test(arguments: [nil, "s"] as [String?])
    func connectingToItselfIsRefused(secret: String?) {
        let (d, c) = Self.run(dialer: Self.hs(Self.a, secret, nonce: "n1"), acceptor: Self.hs(Self.a, secret, nonce: "n2"))
        #expect(c.outcome == .failed(reason: "connected to itself"))
        if case .established = d.outcome { Issue.record("dialer established with itself") }
        #expect(d.closed)
    }

    @Test func outOfOrderMessagesAreRefused() {
        var x = Self.hs(Self.b, "s", nonce: "n")
        guard case .failed = x.receive(.auth(proof: "00")).outcome else { Issue.record("AUTH before HELLO accepted"); return }

        var y = Self.hs(Self.b, nil, nonce: "n")
        guard case .failed = y.receive(.bye(Flood(origin: Self.a, seq: 1))).outcome else { Issue.record("BYE before HELLO accepted"); return }

        var z = Self.hs(Self.b, nil, nonce: "n")
        let hello = PeerMessage.hello(node: Self.a, advertise: "10.0.0.1:8888", nonce: "n1", secret: false)
        _ = z.receive(hello)
        guard case .failed = z.receive(hello).outcome else { Issue.record("second HELLO accepted"); return }

        var w = Self.hs(Self.b, nil, nonce: "n")
        _ = w.receive(hello)
        guard case .failed = w.receive(.auth(proof: "00")).outcome else { Issue.record("AUTH on an open link accepted"); return }
    }

    @Test func peerErrorEndsTheHandshakeWithoutReply() {
        var x = Self.hs(Self.a, nil, nonce: "n")
        _ = x.start()
        let (send, outcome) = x.receive(.error(reason: "go away"))
        #expect(send.isEmpty)
        #expect(outcome == .failed(reason: "peer refused the link: go away"))
    }
}
