/// docs/cluster-protocol.md §8.1–2 under load: five nodes, twenty members, every message exactly once and
/// each sender's messages in order, everywhere.
import Foundation
import Testing
import TestSupport

extension ClusterTests {
    @Test func fiveNodesTwentyClientsExactlyOnceInOrder() throws {
        try withCluster { nodes in
            // Joined as a chain (each --peer's the previous one); gossip links the rest.
            var cluster: [ClusterNode] = [try nodes.start("N0", ["--rate-limit", "0"])]
            for i in 1..<5 {
                cluster.append(try nodes.start("N\(i)", ["--rate-limit", "0", "--peer", cluster[i - 1].address]))
            }
            try awaitMesh(cluster, timeout: .seconds(12))
            try awaitSharedNames(cluster)
            try awaitSharedNames(cluster.reversed())

            let members = try (0..<20).map { k in try join("u\(k)", "crowd", on: cluster[k % 5]) }
            let start = ContinuousClock.now
            try expectExactlyOnce(members, perSender: 50, timeout: .seconds(12))
            print("cluster: 5 nodes × 20 clients × 50 messages delivered in \(Int((ContinuousClock.now - start).milliseconds)) ms")
            for n in cluster { #expect(n.isRunning, "\(n.name) died\n\(n.stderrTail())") }
        }
    }
}
