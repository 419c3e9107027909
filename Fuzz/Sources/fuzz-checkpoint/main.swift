// fuzz-checkpoint: the task checkpoint decoder (KappaStreams/TaskState.swift `decode`, formats
// 1 and 2, and the decoders it calls: SourceProgress, WindowPreAggregator, WindowMerger,
// Sessionizer, TicketRideMatcher, AggregateState, Lineage, StateReader).
//
// Input: `CheckpointCase`: a selector (which job and plan, task, version; whether the
// harness appends the CRC-32C, so that mutations reach the decoder past the checksum),
// then the checkpoint's bytes. Seeds are real checkpoints of the shipped jobs.
//
// Invariants checked besides "no crash, no out-of-bounds read":
// - a refused checkpoint is refused with a reason (`StateReader.Failure`), never a trap;
// - an accepted one is usable the way `jobs describe`, `kappa query` and a restarted task
//   use it: its status, its open rows and partials render; it encodes again, and what it
//   encodes decodes to a state that shows the same (status, rows, partials).
import FuzzSupport
import KappaCore
import KappaFormat
@testable import KappaStreams

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpoint(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(UnsafeRawBufferPointer(start: data, count: size))
    let (job, task, version, appendCRC) = CheckpointCase.decode(input.byte())
    let body = input.rest()
    let file = ByteWriter(capacity: body.count + 4)
    file.append(body)
    if appendCRC { file.appendBigEndian(CRC32C.checksum(body)) }
    let bytes = exactCopy(file.bytes)
    defer { bytes.deallocate() }
    let plan = job.plan
    let state = TaskState(definition: job.definition, version: version, task: task, plan: plan)
    let ends: TaskState.OutputEnds
    do throws(StateReader.Failure) {
        ends = try state.decode(UnsafeRawBufferPointer(bytes))
    } catch {
        require(!error.description.isEmpty, "a refusal without a reason")
        return 0
    }
    use(state)
    let first = ByteWriter(capacity: 1 << 12)
    state.encode(ends: ends, into: first)
    let again = TaskState(definition: job.definition, version: version, task: task, plan: plan)
    do throws(StateReader.Failure) {
        let ends2 = try again.decode(first.bytes)
        require(ends2 == ends, "the output ends changed in a round trip: \(ends) -> \(ends2)")
    } catch {
        require(false, "a decoded checkpoint encodes to bytes that do not decode: \(error)")
    }
    // What readers see of the state is the same after a round trip. (Not the bytes: the
    // matcher writes tickets with the same time, partition and offset — which no log
    // holds, but a checkpoint may claim — in the order its heap keeps them.)
    require(view(again) == view(state), "what a checkpoint shows changed in a round trip through encode and decode")
    return 0
}

/// What readers of a checkpoint do with it: `jobs describe` (status), `kappa query` (open
/// rows and partials, as JSON).
func use(_ state: TaskState) {
    _ = view(state)
}

/// What `jobs describe` and `kappa query` show of a task's state, in a canonical order.
func view(_ state: TaskState) -> [[UInt8]] {
    let rows = state.openRows().map(\.json).sorted { $0.lexicographicallyPrecedes($1) }
    let partials = state.openPartials().map { Array("\($0.key) \($0.windowStart) \($0.state) \($0.lineage.header(topic: "t"))".utf8) }
    return [state.status().json()] + rows + partials.sorted { $0.lexicographicallyPrecedes($1) }
}
