// fuzz-jobfile: the job-file parser (KappaStreams/JobFile.swift over Yams/libyaml).
//
// Input: the text of a job file (bytes as UTF-8, invalid sequences replaced).
//
// Invariants checked besides "no crash, no hang, no out-of-bounds read":
// - a refusal is a KappaError(.invalidArgument) whose message names the file;
// - an accepted job is one Kappa can run: valid job, input and output names, durations
//   positive (grace may be 0), windows whose size is a whole multiple of the advance,
//   a match's inputs exactly its tickets and rides topics;
// - it survives the registry's JSON round trip unchanged;
// - a task of it can be made (TaskState over a plan of its inputs), checkpoints to
//   bytes that decode again, and its operator takes a few on-time events at 2016 times
//   and closes them — so a job file the parser accepts cannot crash the job that runs it.
import Foundation
import FuzzSupport
import KappaCore
import KappaLog
@testable import KappaStreams

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJobFile(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeRawBufferPointer(start: data, count: size), as: UTF8.self)
    let definition: JobDefinition
    do {
        definition = try JobFile.parse(text, path: "fuzz.yaml")
    } catch {
        require(error.code == .invalidArgument, "a refusal with code \(error.code): \(error)")
        require(error.message.hasPrefix("fuzz.yaml: "), "a refusal that does not name the file: \(error.message)")
        return 0
    }
    checkAccepted(definition)
    checkRegistryRoundTrip(definition)
    run(definition)
    return 0
}

func checkAccepted(_ d: JobDefinition) {
    func valid(_ name: String) -> Bool { (try? validateName(name, what: "name")) != nil }  // the verdict is the value
    require(valid(d.name) && valid(d.output) && !d.inputs.isEmpty && d.inputs.allSatisfy(valid), "accepted names \(d.name), \(d.inputs), \(d.output)")
    require(!d.keyField.isEmpty && !d.timeField.isEmpty, "accepted an empty key or time field")
    if let idle = d.idleTimeoutNanos { require(idle > 0, "accepted idle_timeout \(idle)") }
    switch d.operation {
    case .window(let w):
        require(w.sizeNanos > 0 && w.advanceNanos > 0 && w.advanceNanos <= w.sizeNanos && w.sizeNanos % w.advanceNanos == 0 && w.graceNanos >= 0,
                "accepted a window of size \(w.sizeNanos), advance \(w.advanceNanos), grace \(w.graceNanos)")
        require(!w.aggregates.isEmpty && w.aggregates.allSatisfy { ($0.kind == .count) == ($0.field == nil) }, "accepted aggregates \(w.aggregates)")
        require(Set(d.inputs).count == d.inputs.count, "accepted an input listed twice")
    case .session(let s):
        require(s.gapNanos > 0 && s.graceNanos >= 0, "accepted a session gap \(s.gapNanos), grace \(s.graceNanos)")
        require(Set(d.inputs).count == d.inputs.count, "accepted an input listed twice")
    case .match(let m):
        require(m.graceNanos >= 0 && d.inputs.count == 2 && Set(d.inputs) == Set([m.tickets, m.rides]) && m.tickets != m.rides,
                "accepted a match of \(d.inputs) with tickets \(m.tickets), rides \(m.rides)")
    }
}

/// The registry keeps definitions as JSON (job.json).
func checkRegistryRoundTrip(_ d: JobDefinition) {
    do {
        let again = try JSONDecoder().decode(JobDefinition.self, from: JSONEncoder().encode(d))
        require(again == d, "the JSON round trip changed the definition: \(d) -> \(again)")
    } catch {
        require(false, "the JSON round trip failed: \(error)")
    }
}

/// Runs a task of the job over a handful of events: what `kappa process` does first.
func run(_ d: JobDefinition) {
    // Two partitions per input, keyed by another field: every input re-keyed (the plan
    // with the most sources); a match's tickets in one partition.
    let configs = d.inputs.enumerated().map { i, topic in
        (topic: topic, config: TopicConfig(partitions: i == 0 ? 2 : 1, keyField: "not-" + d.keyField))
    }
    let plan = JobPlan.make(d, configs: configs)
    let state = TaskState(definition: d, version: 1, task: 0, plan: plan)
    let w = ByteWriter(capacity: 1024)
    state.encode(ends: TaskState.OutputEnds(), into: w)
    let fresh = TaskState(definition: d, version: 1, task: 0, plan: plan)
    do throws(StateReader.Failure) {
        _ = try fresh.decode(w.bytes)
    } catch {
        require(false, "a new task's checkpoint does not decode: \(error)")
    }
    let t0: Int64 = 1_457_741_907_959_400_112  // 2016-03-12, the Rebu data's time
    let times = [t0, t0 + 1, t0 + 3_600_000_000_000, t0 - 60_000_000_000, t0 + 86_400_000_000_000].map { TimestampNanos($0) }
    switch state.op {
    case .window(let merger):
        let values = [Decimal9?](repeating: Decimal9(integer: 7), count: merger.spec.fields.count)
        let pre = state.sources[0].pre!
        values.withUnsafeBufferPointer { v in
            for (i, t) in times.enumerated() {
                _ = pre.add(key: "k\(i % 2)", time: t, values: v, partition: 0, offset: Int64(i)) { _ = merger.apply($0) }
            }
        }
        pre.closeReady { _ = merger.apply($0) }
        merger.closeReady(watermark: times.max()!) { _ = $0.json(merger.spec, fields: merger.spec.fields) }
        for r in merger.openResults() { _ = r.json(merger.spec, fields: merger.spec.fields) }
    case .session(let s):
        for (i, t) in times.enumerated() { s.add(key: "k\(i % 2)", time: t, type: "login", partition: 0, offset: Int64(i)) }
        s.closeReady(watermark: times.max()!) { _ = $1.json(key: $0) }
    case .match(let m):
        for (i, t) in times.enumerated() {
            m.addRide(user: "u\(i % 2)", id: "r\(i)", time: t, offset: Int64(i))
            m.addTicket(user: "u\(i % 2)", id: "t\(i)", time: TimestampNanos(t.rawValue + 1), offset: Int64(i))
        }
        m.ridesWatermark = times.max()!
        m.ticketsWatermark = times.max()!
        m.closeReady { _ = $0.json() }
    }
    _ = state.status()
}
