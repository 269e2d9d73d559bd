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

    /// The AUTH a dialer sends after the acceptor's HELLO carrying `nonce`.
    static func proof(by prover: NodeID, for verifier: NodeID, secret: String, nonce: String, dialerNonce: String = "proverNonce") -> String? {
        var h = hs(prover, secret, nonce: dialerNonce)
        _ = h.start()
        let (out, _) = h.receive(.hello(node: verifier, advertise: "10.0.0.9:1", nonce: nonce, secret: true))
        if case .auth(let p)? = out.last { return p }
        return nil
    }

    @Test func aProofIsNotTheSecretAndDependsOnNoncesDirectionAndSecret() throws {
        let p = try #require(Self.proof(by: Self.a, for: Self.b, secret: "s3cret", nonce: "n"))
        #expect(p.count == 64 && p.allSatisfy { $0.isHexDigit && !$0.isUppercase })
        #expect(!p.contains("s3cret"))
        #expect(p != Self.proof(by: Self.a, for: Self.b, secret: "s3cret", nonce: "m"))
        #expect(p != Self.proof(by: Self.a, for: Self.b, secret: "s3cret", nonce: "n", dialerNonce: "other"))
        #expect(p != Self.proof(by: Self.b, for: Self.a, secret: "s3cret", nonce: "n"))
        #expect(p != Self.proof(by: Self.a, for: Self.b, secret: "other", nonce: "n"))
        #expect(p == Self.proof(by: Self.a, for: Self.b, secret: "s3cret", nonce: "n"))
    }

    /// The acceptor signs nothing before the dialer has proved the secret: a stranger who
    /// only sends a HELLO gets a HELLO back, never an AUTH it could relay elsewhere.
    @Test func theAcceptorProvesOnlyAfterTheDialer() throws {
        var acceptor = Self.hs(Self.b, "s3cret", nonce: "acceptorNonce")
        let (out, outcome) = acceptor.receive(.hello(node: Self.a, advertise: "10.0.0.1:8888", nonce: "dialerNonce", secret: true))
        #expect(outcome == .waiting)
        #expect(out.count == 1)
        if case .hello? = out.first {} else { Issue.record("the acceptor answered HELLO with \(out)") }
        #expect(!out.contains { if case .auth = $0 { return true } else { return false } }, "the acceptor proved first")
        // A wrong proof gets an ERROR and still no AUTH.
        let (out2, outcome2) = acceptor.receive(.auth(proof: String(repeating: "0", count: 64)))
        #expect(outcome2 == .failed(reason: "wrong cluster secret proof"))
        #expect(!out2.contains { if case .auth = $0 { return true } else { return false } })
    }

    /// The relay attack of issue 10 on the pure handshake: an outsider who knows A's and B's
    /// ids opens a link to A claiming to be B, and one to B claiming to be A, and tries to
    /// make one node sign the proof the other expects. B, as acceptor, signs nothing; so
    /// A's link never opens.
    @Test func aProofCannotBeRelayedBetweenTwoNodes() throws {
        var a = Self.hs(Self.a, "s3cret", nonce: "nonceOfA")
        var b = Self.hs(Self.b, "s3cret", nonce: "nonceOfB")
        // To A, claiming B (as dialer, with a nonce of the attacker's choosing).
        let (toAttackerFromA, _) = a.receive(.hello(node: Self.b, advertise: "10.0.0.2:9999", nonce: "attackerNonce", secret: true))
        guard case .hello(_, _, let nonceA, _)? = toAttackerFromA.first else { Issue.record("A did not answer HELLO"); return }
        // To B, claiming A, offering A's nonce and the nonce it used with A.
        let (toAttackerFromB, _) = b.receive(.hello(node: Self.a, advertise: "10.0.0.1:8888", nonce: nonceA, secret: true))
        let proofs = (toAttackerFromA + toAttackerFromB).compactMap { m -> String? in
            if case .auth(let p) = m { return p } else { return nil }
        }
        #expect(proofs.isEmpty, "a node signed a proof for a stranger: \(proofs)")
        // Whatever the attacker sends A instead is refused.
        for forged in [String(repeating: "0", count: 64), nonceA] {
            var a2 = Self.hs(Self.a, "s3cret", nonce: "nonceOfA")
            _ = a2.receive(.hello(node: Self.b, advertise: "10.0.0.2:9999", nonce: "attackerNonce", secret: true))
            if case .established = a2.receive(.auth(proof: forged)).outcome { Issue.record("A accepted a forged proof") }
        }
    }

    @Test func replayedOrReflectedProofIsRefused() throws {
        let hello = PeerMessage.hello(node: Self.a, advertise: "10.0.0.1:8888", nonce: "n1", secret: true)
        // The right proof for this link's nonces is accepted, and the acceptor then proves...
        var good = Self.hs(Self.b, "s3cret", nonce: "fresh")
        _ = good.receive(hello)
        let right = try #require(Self.proof(by: Self.a, for: Self.b, secret: "s3cret", nonce: "fresh", dialerNonce: "n1"))
        let (goodOut, goodOutcome) = good.receive(.auth(proof: right))
        #expect(goodOutcome == .established(node: Self.a, advertise: "10.0.0.1:8888"))
        guard case .auth(let acceptorProof)? = goodOut.last else { Issue.record("the acceptor did not prove after the dialer"); return }
        // ...one recorded on an earlier link (another acceptor nonce) is not.
        var acceptor = Self.hs(Self.b, "s3cret", nonce: "fresh")
        _ = acceptor.receive(hello)
        let recorded = try #require(Self.proof(by: Self.a, for: Self.b, secret: "s3cret", nonce: "old", dialerNonce: "n1"))
        let (send, outcome) = acceptor.receive(.auth(proof: recorded))
        #expect(outcome == .failed(reason: "wrong cluster secret proof"))
        #expect(send.contains { if case .error = $0 { return true } else { return false } })
        // Nor is the acceptor's own proof (the other role) reflected back to it accepted.
        var other = Self.hs(Self.b, "s3cret", nonce: "fresh")
        _ = other.receive(hello)
        if case .established = other.receive(.auth(proof: acceptorProof)).outcome { Issue.record("accepted its own proof reflected back") }
        // Nor a proof bound to another transport session.
        var bound = PeerHandshake(me: Self.b, advertise: "10.0.0.2:9999", secret: Array("s3cret".utf8), nonce: "fresh", binding: [1, 2, 3])
        _ = bound.receive(hello)
        if case .established = bound.receive(.auth(proof: right)).outcome { Issue.record("accepted a proof made for another session") }
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
