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

    @Test("lines logged from many threads at once all come out whole, each thread's in its order")
    func concurrentLinesStayWholeAndOrdered() async throws {
        let ends = Self.pipe()
        defer { close(ends.read); close(ends.write) }
        let output = LogOutput(descriptor: ends.write, interval: .milliseconds(5), limit: 4096)
        var text = ""
        // 1,200 short lines: well within what a pipe holds (64 KiB), so no writer waits.
        await withTaskGroup(of: Void.self) { group in
            for thread in 0..<4 {
                group.addTask { for n in 0..<300 { output.write("\(thread)-\(n)\n", urgent: n % 97 == 0) } }
            }
        }
        output.flush()
        for _ in 0..<100 {
            text += Self.available(ends.read)
            if text.split(separator: "\n").count >= 1200 { break }
            try await Task.sleep(for: .milliseconds(5))
        }
        let lines = text.split(separator: "\n")
        #expect(lines.count == 1200)
        for thread in 0..<4 {
            let mine = lines.filter { $0.hasPrefix("\(thread)-") }.map { Int($0.split(separator: "-")[1])! }
            #expect(mine == Array(0..<300), "thread \(thread)")
        }
    }
}
