/// Peer links over mutual TLS (docs/tls.md, docs/cluster-protocol.md): a node with
/// certificates dials with TLS, both ends verify the other's chain against the cluster CA,
/// and a plaintext or unverifiable peer is refused with a clear ERROR and log line.
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("TLS cluster", .serialized)
struct TLSClusterTests {
    @Test func threeNodesWithMutualTLSDeliverExactlyOnce() throws {
        let certs = try TLSCerts()
        let secret = try ClusterTempFile("a cluster secret\n")
        let flags = certs.serverFlags + ["--cluster-secret-file", secret.path]
        try withCluster { nodes in
            let a = try nodes.start("A", flags)
            let b = try nodes.start("B", flags + ["--peer", a.address])
            let c = try nodes.start("C", flags + ["--peer", b.address])
            try awaitMesh([a, b, c])
            try awaitSharedNames([a, b, c])
            for n in [a, b, c] {
                let ups = n.stderr.split(separator: "\n").filter { $0.contains("peer link up") }
                #expect(!ups.isEmpty && ups.allSatisfy { $0.contains("tls=TLSv1.3") }, "\(n.name): \(ups)")
            }
            let alice = try join("alice", "room", on: a)
            let bob = try join("bob", "room", on: b)
            let carol = try join("carol", "room", on: c)
            for i in 0..<20 { try alice.send("m\(i)\n") }
            for client in [alice, bob, carol] {
                for i in 0..<20 { try expectNextLine(client, "alice - m\(i)") }
            }
            try carol.send("marker\n")
            for client in [alice, bob, carol] { try expectNextLine(client, "carol - marker") }
            try expectNoLines(bob, "every message arrived exactly once")
            for n in [a, b, c] {
                #expect(n.logCount("peer link refused") == 0, "\(n.name)\n\(n.stderrTail())")
            }
        }
    }

    @Test func racingLoginsOverTLSLinksGiveExactlyOne200() throws {
        let certs = try TLSCerts()
        try withCluster { nodes in
            let a = try nodes.start("A", certs.serverFlags)
            let b = try nodes.start("B", certs.serverFlags + ["--peer", a.address])
            let c = try nodes.start("C", certs.serverFlags + ["--peer", a.address])
            let all = [a, b, c]
            try awaitMesh(all)
            try awaitSharedNames(all)
            for round in 0..<15 {
                let name = "race\(round)"
                let clients = try all.map { try LineClient.connect(port: $0.port, label: "\(name)@\($0.name)") }
                for client in clients { try client.send("\(name)_race\n") }
                let replies = try clients.map { try $0.readLine() }
                #expect(replies.filter { $0 == "200" }.count == 1 && replies.filter { $0 == "403" }.count == 2,
                        "round \(round): \(replies)")
                for client in clients { client.close() }
            }
        }
    }

    @Test func aPlaintextPeerDialingATLSNodeIsRefused() throws {
        let certs = try TLSCerts()
        try withCluster { nodes in
            let a = try nodes.start("A", certs.serverFlags)
            let b = try nodes.start("B", ["--peer", a.address])
            _ = try retry(for: .seconds(5), "A to refuse B's plaintext HELLO") {
                a.stderr.contains("requires TLS on peer links") ? true : nil
            }
            _ = try retry(for: .seconds(5), "B to log A's ERROR") {
                b.stderr.contains("requires TLS on peer links") ? true : nil
            }
            try expectRefusedLink(a, b)
        }
    }

    @Test func aTLSPeerWithACertificateFromAnotherCAIsRefused() throws {
        let certs = try TLSCerts()
        try withCluster { nodes in
            let a = try nodes.start("A", certs.serverFlags)
            // B trusts A's CA (so B's side verifies A) but presents a certificate A cannot verify.
            let b = try nodes.start("B", ["--tls-cert", certs.otherCert, "--tls-key", certs.otherKey,
                                          "--tls-ca", certs.ca, "--peer", a.address])
            _ = try retry(for: .seconds(5), "A to refuse B's certificate") {
                a.stderr.contains("certificate not verified") ? true : nil
            }
            try expectRefusedLink(a, b)
        }
    }

    @Test func aTLSNodeRefusesToLinkToAPeerItCannotVerify() throws {
        let certs = try TLSCerts()
        try withCluster { nodes in
            // A's certificate comes from another CA than the one B trusts: B's dial fails.
            let a = try nodes.start("A", ["--tls-cert", certs.otherCert, "--tls-key", certs.otherKey, "--tls-ca", certs.ca])
            let b = try nodes.start("B", certs.serverFlags + ["--peer", a.address])
            _ = try retry(for: .seconds(5), "B to refuse A's certificate") {
                b.stderr.contains("certificate verify failed") ? true : nil
            }
            try expectRefusedLink(a, b)
        }
    }

    @Test func aTLSNodeDialingAPlaintextNodeIsRefused() throws {
        let certs = try TLSCerts()
        try withCluster { nodes in
            let a = try nodes.start("A")
            let b = try nodes.start("B", certs.serverFlags + ["--peer", a.address])
            _ = try retry(for: .seconds(5), "B to log the failed TLS link") {
                b.logCount("peer link refused") > 0 ? true : nil
            }
            try expectRefusedLink(a, b)
        }
    }
}
