import Foundation
import Glibc
import ItakuCore
import Testing

@Suite("Log output")
struct LogOutputTests {
    /// What is in the pipe now, without waiting.
    static func available(_ descriptor: Int32) -> String {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = read(descriptor, &buffer, buffer.count)
            guard count > 0 else { break }
            bytes += buffer[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func pipe() -> (read: Int32, write: Int32) {
        var ends: [Int32] = [0, 0]
        #expect(Glibc.pipe(&ends) == 0)
        _ = fcntl(ends[0], F_SETFL, O_NONBLOCK)
        return (ends[0], ends[1])
    }

    @Test("info lines gather and go out together; a warning goes out at once, after every line before it")
    func urgentLinesFlushInOrder() {
        let ends = Self.pipe()
        defer { close(ends.read); close(ends.write) }
        let output = LogOutput(descriptor: ends.write, interval: .seconds(3600))
        output.write("one\n", urgent: false)
        output.write("two\n", urgent: false)
        #expect(Self.available(ends.read) == "", "info lines wait")
        output.write("three\n", urgent: true)
        #expect(Self.available(ends.read) == "one\ntwo\nthree\n")
    }

    @Test("gathered lines go out within the interval, and at once past the size limit")
    func intervalAndLimit() async throws {
        let ends = Self.pipe()
        defer { close(ends.read); close(ends.write) }
        let output = LogOutput(descriptor: ends.write, interval: .milliseconds(20), limit: 1000)
        output.write("soon\n", urgent: false)
        var seen = ""
        for _ in 0..<500 where seen.isEmpty {
            try await Task.sleep(for: .milliseconds(5))
            seen = Self.available(ends.read)
        }
        #expect(seen == "soon\n")
        let long = String(repeating: "x", count: 999) + "\n"
        output.write(long, urgent: false)
        #expect(Self.available(ends.read) == long, "the limit writes at once")
    }
}
