/// docs/cluster-protocol.md §8.4–5: a node that dies, hangs or leaves is noticed; its names are freed; links
/// come back when it returns; a split cluster merges and an earlier login keeps its name.
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
import TestSupport
#endif

extension ClusterTests {
    static let mergeNotice = "* your name was granted to an earlier login elsewhere in the cluster; disconnecting"

    @Test func killedNodesNamesAreFreedAndARestartRejoins() throws {
        // Default heartbeat settings: a dead node is noticed within 5 s.
        try withCluster { nodes in
            let a = try nodes.start("A")
            let b = try nodes.start("B", ["--peer", a.address])
            let c = try nodes.start("C", ["--peer", a.address])
            try awaitMesh([a, b, c])
            try awaitSharedNames([b, a, c])

            let bob = try join("bob", "room", on: b)
            let bobby = try join("bobby", "room", on: b)
            try expectRefused("bob", "room", on: a, "bob is logged in on B")
            try expectRefused("bobby", "room", on: c, "bobby is logged in on B")

            let killedAt = ContinuousClock.now
            b.kill9()
            var freedOnA: (LineClient, Duration)?
            var freedOnC: (LineClient, Duration)?
            while freedOnA == nil || freedOnC == nil {
                if freedOnA == nil {
                    let (r, cl) = try login("bob", "room", on: a)
                    if r == "200" { freedOnA = (cl, ContinuousClock.now - killedAt) } else { cl.close() }
                }
                if freedOnC == nil {
                    let (r, cl) = try login("bobby", "room", on: c)
                    if r == "200" { freedOnC = (cl, ContinuousClock.now - killedAt) } else { cl.close() }
                }
                if ContinuousClock.now - killedAt > .seconds(5) { break }
                Thread.sleep(forTimeInterval: 0.02)
            }
            guard let fa = freedOnA, let fc = freedOnC else {
                throw E2EError("5 s after B was killed: bob \(freedOnA == nil ? "still refused" : "free") on A, bobby \(freedOnC == nil ? "still refused" : "free") on C")
            }
            let (bobOnA, tA) = fa, (bobbyOnC, tC) = fc
            print("cluster: names of a SIGKILLed node freed after \(Int(tA.milliseconds)) ms (A), \(Int(tC.milliseconds)) ms (C)")
            #expect(tA < .seconds(5) && tC < .seconds(5), "freed after \(tA) on A, \(tC) on C")
            try bob.expectClosed()
            bobby.close()

            // B comes back on its old port, as a new incarnation, and rejoins.
            let b2 = try nodes.start("B2", port: b.port, ["--peer", a.address])
            try awaitMesh([a, b2, c])
            try awaitSharedNames([b2, a, c])
            try expectRefused("bob", "x", on: b2, "bob is logged in on A")
            try expectRefused("BOBBY", "x", on: b2, "bobby is logged in on C")
            let brenda = try join("brenda", "room", on: b2)
            try expectSaid("bob", on: bobOnA, "welcome back", reaches: [bobbyOnC, brenda])
            try brenda.send("glad to be here\n")
            for m in [brenda, bobOnA, bobbyOnC] { try expectNextLine(m, "brenda - glad to be here") }
        }
    }

    @Test func aNodeRestartedAfterItsSeedDiedIsFoundAgain() throws {
        // B and C joined through A. A goes for good: B and C stay linked (they learned each
        // other by gossip). Then B restarts with its unchanged command line, whose only
        // --peer is the dead A: the cluster must not stay split — C knows B's address and
        // must link to it again ("Links come back by themselves when the node returns").
        let fast = ["--heartbeat-ms", "200", "--peer-timeout-ms", "1000"]
        try withCluster { nodes in
            let a = try nodes.start("A", fast)
            let b = try nodes.start("B", fast + ["--peer", a.address])
            let c = try nodes.start("C", fast + ["--peer", a.address])
            try awaitMesh([a, b, c])
            a.kill9()
            try awaitMesh([b, c])
            try awaitSharedNames([b, c])
            b.kill9()
            _ = try retry(for: .seconds(5), "C to log `peer link down` for B") { c.linkedPeers.isEmpty ? true : nil }
            let b2 = try nodes.start("B2", port: b.port, fast + ["--peer", a.address])
            try awaitMesh([b2, c], timeout: .seconds(8))
            try awaitSharedNames([b2, c])
            try awaitSharedNames([c, b2])
            let carol = try join("carol", "room", on: c)
            let bob = try join("bob", "room", on: b2)
            try carol.send("found you\n")
            try expectNextLine(bob, "carol - found you")
        }
    }

    @Test func aNodeRestartedWithoutPeerIsRedialedByTheNodeItHadLinkedTo() throws {
        // A only ever had B's inbound link, but B's HELLO told A where B listens. B comes
        // back on that address with no --peer at all: A must dial it ("Links come back by
        // themselves when the node returns").
        let fast = ["--heartbeat-ms", "200", "--peer-timeout-ms", "1000"]
        try withCluster { nodes in
            let a = try nodes.start("A", fast)
            let b = try nodes.start("B", fast + ["--peer", a.address])
            try awaitMesh([a, b])
            b.kill9()
            _ = try retry(for: .seconds(5), "A to log `peer link down` after B was killed") {
                a.linkedPeers.isEmpty ? true : nil
            }
            let b2 = try nodes.start("B2", port: b.port, fast)
            try awaitMesh([a, b2], timeout: .seconds(8))
            try awaitSharedNames([a, b2])
            try awaitSharedNames([b2, a])
            let alice = try join("alice", "room", on: a)
            let bob = try join("bob", "room", on: b2)
            try alice.send("found you\n")
            try expectNextLine(bob, "alice - found you")
        }
    }

    @Test func cleanShutdownFreesNamesBeforeThePeerTimeout() throws {
        let slow = ["--peer-timeout-ms", "10000"]
        try withCluster { nodes in
            let a = try nodes.start("A", slow)
            let b = try nodes.start("B", slow + ["--peer", a.address])
            try awaitMesh([a, b])
            try awaitSharedNames([b, a])
            let bob = try join("bob", "room", on: b)
            let alice = try join("alice", "room", on: a)
            try expectRefused("bob", "room", on: a, "bob is logged in on B")

            let stoppedAt = ContinuousClock.now
            b.send(signal: SIGTERM)
            let (bobOnA, after) = try loginWhenFree("bob", "room", on: a, within: .seconds(3),
                                                    "after B was stopped with SIGTERM (peer timeout 10 s)")
            print("cluster: names of a node stopped with SIGTERM freed after \(Int(after.milliseconds)) ms")
            #expect(after < .seconds(3))
            let (code, status) = b.waitForExit(timeout: .seconds(5) - (ContinuousClock.now - stoppedAt))
            #expect(code == 0, "B \(status) after SIGTERM\n\(b.stderrTail())")
            // B told its client goodbye (docs/operations.md, "Taking a node down") before closing.
            let goodbye = try bob.expectClosed()
            #expect(goodbye == Array("/exit\n".utf8), "bob on B got \(describe(goodbye)) before the close, expected \"/exit\\n\"")
            // A serves on: the new bob and alice chat.
            try bobOnA.send("still here\n")
            try expectNextLine(alice, "bob - still here")
        }
    }

    @Test func hungNodeIsNoticedAndMergesBackWithTheEarlierLoginKeepingItsName() throws {
        // SIGSTOP makes B hang: A must notice within 5 s (default heartbeat) and free B's
        // names. A later login takes bob on A. When B resumes, the two sides merge: bob on B
        // logged in first, so he keeps the name; A's bob gets the notice and is closed.
        try withCluster { nodes in
            let a = try nodes.start("A")
            let b = try nodes.start("B", ["--peer", a.address])
            try awaitMesh([a, b])
            try awaitSharedNames([b, a])
            let bobOnB = try join("bob", "room", on: b)
            let carolOnB = try join("carol", "room", on: b)
            let alice = try join("alice", "room", on: a)
            try expectRefused("bob", "room", on: a, "bob is logged in on B")

            b.send(signal: SIGSTOP)
            defer { b.send(signal: SIGCONT) }
            let (bobOnA, after) = try loginWhenFree("bob", "room", on: a, within: .seconds(5), "after B hung (SIGSTOP)")
            print("cluster: names of a hung (SIGSTOPped) node freed after \(Int(after.milliseconds)) ms")
            // A serves on while B hangs.
            try alice.send("B is gone\n")
            try expectNextLine(bobOnA, "alice - B is gone")

            b.send(signal: SIGCONT)
            // bob on A is the later claim: it gets the notice and is closed.
            let tail = try bobOnA.expectClosed(timeout: .seconds(8))
            let text = String(decoding: tail, as: UTF8.self)
            #expect(text.contains(Self.mergeNotice + "\n"), "bob on A (the later login) got \(describe(tail)) before the close")
            try awaitMesh([a, b])
            try awaitSharedNames([a, b])
            try awaitSharedNames([b, a])
            // bob on B (the earlier login) survives and the room is whole again.
            try expectSaid("bob", on: bobOnB, "I was first", reaches: [carolOnB])
            // alice may have seen A's bob, but no notice; skip what she got while split.
            _ = try retry(for: .seconds(3), "alice on A to receive bob's message from B after the merge") {
                try alice.availableLines().contains("bob - I was first") ? true : nil
            }
            try expectRefused("bob", "room", on: a, "bob on B kept the name")
        }
    }
}
