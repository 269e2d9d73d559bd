/// A cluster secret shorter than 16 bytes (after trailing whitespace is trimmed) is refused
/// by `tcp_chat server` and `tcp_chat status` with one clear error line and exit status 64:
/// anyone who can make a node or a status client compute HMAC(secret, known text) can test
/// guesses offline, so only a long random secret holds (docs/operations.md).
import ChatCore
import Foundation
import Testing

@Suite("Cluster secret length")
struct SecretLengthTests {
    /// Runs `tcp_chat ARGS` to its exit (bounded), returning its code, stdout and stderr.
    private func run(_ args: [String]) throws -> (code: Int32?, out: String, err: String) {
        let out = try OutputPipe(), err = try OutputPipe()
        let child = try ChildProcess(executable: try NodeBinary.path(), arguments: args, stdout: out.childEnd, stderr: err.childEnd)
        out.closeWriteEnd()
        err.closeWriteEnd()
        defer { child.killAndReap() }
        guard child.waitForExit(timeout: .seconds(10)) else {
            throw E2EError("`tcp_chat \(args.joined(separator: " "))` did not exit in 10 s")
        }
        out.drain()
        err.drain()
        return (child.exitCode, out.text, err.text)
    }

    private let fifteen = String(repeating: "k", count: Limits.minClusterSecretBytes - 1)
    private let sixteen = String(repeating: "k", count: Limits.minClusterSecretBytes)

    @Test func minimumIs16Bytes() {
        #expect(Limits.minClusterSecretBytes == 16)
    }

    @Test func serverRefusesA15ByteSecret() throws {
        // Trailing whitespace is not part of the secret: 15 bytes and a newline are 15.
        let file = try ClusterTempFile(fifteen + " \n")
        let r = try run(["server", "-a", "127.0.0.1", "-p", "0", "--cluster-secret-file", file.path])
        #expect(r.code == 64)
        #expect(r.out == "", "the node must not start")
        #expect(r.err.contains("cluster secret file \(file.path) holds 15 bytes; a secret needs at least 16 random bytes"), "stderr: \(r.err)")
        #expect(r.err.contains("openssl rand -hex 32"))
        #expect(!r.err.contains(fifteen), "the error must not show the secret")
        #expect(r.err.split(separator: "\n").filter { !$0.isEmpty }.count == 1, "one error line, got:\n\(r.err)")
    }

    @Test func serverTakesA16ByteSecret() throws {
        let file = try ClusterTempFile(sixteen + "\n")
        try withNode(["--cluster-secret-file", file.path]) { node in
            let alice = try LineClient.join("alice", "room", port: node.port)
            try alice.send("hi\n")
            #expect(try alice.readLine() == "alice - hi")
        }
    }

    @Test func statusRefusesA15ByteSecretAndTakesA16ByteOne() throws {
        let good = try ClusterTempFile(sixteen + "\n", name: "good")
        let short = try ClusterTempFile(fifteen, name: "short")
        try withNode(["--cluster-secret-file", good.path]) { node in
            let refused = try run(["status", "-a", "127.0.0.1", "-p", "\(node.port)", "--cluster-secret-file", short.path])
            #expect(refused.code == 64)
            #expect(refused.out == "")
            #expect(refused.err.contains("holds 15 bytes; a secret needs at least 16 random bytes"), "stderr: \(refused.err)")
            #expect(refused.err.split(separator: "\n").filter { !$0.isEmpty }.count == 1, "one error line, got:\n\(refused.err)")

            let shown = try run(["status", "-a", "127.0.0.1", "-p", "\(node.port)", "--cluster-secret-file", good.path])
            #expect(shown.code == 0, "stderr: \(shown.err)")
            #expect(shown.out.contains("secret cluster"))
            #expect(!shown.out.contains("rooms: hidden"), "the 16-byte secret did not prove itself:\n\(shown.out)")
        }
    }
}
