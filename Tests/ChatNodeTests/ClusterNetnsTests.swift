/// docs/cluster-protocol.md §8.4–5 across real (virtual) hosts: Tests/netns/partition-heal.sh builds three
/// network namespaces on a bridge, runs a node in each, cuts one off and heals it. Needs root
/// and iproute2; without them the test is skipped, unless `CI` is set: then it fails.
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
import TestSupport
#endif

extension ClusterTests {
    /// Why the netns test cannot run here, or nil.
    static let netnsUnavailable: String? = {
        if getuid() != 0 { return "not running as root" }
        if executableOnPath("ip") == nil { return "`ip` (iproute2) not found" }
        if executableOnPath("python3") == nil { return "python3 not found" }
        return nil
    }()

    static var isCI: Bool { !(ProcessInfo.processInfo.environment["CI"] ?? "").isEmpty }

    @Test(.enabled("needs root, iproute2 and python3 (with CI set, their absence is a failure)") {
        if let why = ClusterTests.netnsUnavailable, !ClusterTests.isCI {
            print("skipping the network-namespace partition test: \(why)")
            return false
        }
        return true
    }, .timeLimit(.minutes(2)))
    func partitionHealsAcrossNetworkNamespaces() throws {
        if let why = Self.netnsUnavailable {
            Issue.record("CI is set but the network-namespace partition test cannot run: \(why)")
            return
        }
        let binary = try NodeBinary.path()
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("netns/partition-heal.sh").path
        guard FileManager.default.fileExists(atPath: script) else { throw E2EError("missing \(script)") }

        let outPath = FileManager.default.temporaryDirectory
            .appendingPathComponent("tcp_chat-netns-\(UUID().uuidString).log").path
        let outFD = open(outPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard outFD >= 0 else { throw E2EError("cannot create \(outPath): \(errnoText())") }
        defer { unlink(outPath) }
        var env = ProcessInfo.processInfo.environment
        env["TCP_CHAT_BIN"] = binary
        env["PATH"] = (env["PATH"].map { $0 + ":" } ?? "") + "/usr/sbin:/sbin:/usr/bin:/bin"
        // ChildProcess puts the script in a process group of its own: on timeout the whole
        // group goes (SIGTERM first, so the script's trap deletes its namespaces).
        let child = try ChildProcess(executable: "/bin/bash", arguments: [script, binary],
                                     environment: env, stdout: outFD, stderr: outFD)
        close(outFD)
        defer { child.killAndReap() }

        let limit: Duration = .seconds(60)
        if !child.waitForExit(timeout: limit) {
            _ = kill(-child.pid, SIGTERM)
            if !child.waitForExit(timeout: .seconds(5)) { _ = kill(-child.pid, SIGKILL) }
            child.killAndReap()
            Issue.record("partition-heal.sh did not finish within \(limit) (killed)\n\(readWholeFile(outPath) ?? "")")
            return
        }
        let output = readWholeFile(outPath) ?? ""
        print(output.split(separator: "\n").filter { $0.hasPrefix("netns partition-heal: ") && !$0.contains("---") }
                .joined(separator: "\n"))
        #expect(child.exitCode == 0, "partition-heal.sh \(child.statusText)\n\(output)")
        #expect(output.contains("netns partition-heal: ok"), "no `netns partition-heal: ok` line\n\(output)")
    }
}

/// The first executable `name` on PATH or in the system directories.
func executableOnPath(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
    let dirs = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
    return dirs.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}
