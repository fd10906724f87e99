using System.Runtime;
using System.Runtime.InteropServices;

namespace Adp;

/// <summary>
/// Process-wide settings of the native libtorch runtime, made before its first use (call <see cref="Configure"/> first
/// thing; the CLI, the benchmarks and the tests do):
/// <list type="bullet">
/// <item>Convolution gradients without oneDNN (MKLDNN): every backward pass runs inside <see cref="Backward"/>, which turns
/// oneDNN off for its duration (<c>at::globalContext().setUserEnabledMkldnn</c>, what PyTorch's
/// <c>torch.backends.mkldnn.flags(enabled=False)</c> does; libtorch picks the convolution backend again when it computes the
/// gradient). On this project's AVX-512 machines (AMD EPYC, avx512_bf16) libtorch 2.10's oneDNN (v3.7.1,
/// <c>jit:avx512_core</c> backward-data on channel-padded blocked layouts) returns wrong input gradients, relative errors
/// 0.2–1.1 or NaN, for every stride-1 3×3 and 5×5 convolution whose output channels are not a multiple of 16 (a score network's last
/// convolution is one) and for strided 3×3 ones from 48 channels (<c>adp-bench onednn-ops</c>; docs/BENCHMARKS.md). First seen
/// as NaN gradients now and then: of 8 five-iteration trainings of a tiny NCSNv2 with one seed, 2–4 got one (autograd's
/// anomaly mode: "ConvolutionBackward0 returned nan values in its 0th output"), while the loss and the forward pass stayed
/// finite and deterministic; capping oneDNN, MKL or ATen at AVX2 did not help; without oneDNN, 24 of 24 were finite. A
/// Fashion-MNIST score-model training went NaN after 67 and after ~525 iterations, and every gradient attack is exposed too.
/// Forward passes keep oneDNN: without it a CIFAR-10 purification forward is ~4× slower and a DSM training step ~2×.
/// <c>ADP_MKLDNN=1</c> keeps oneDNN for gradients too (machines where it is sound); <c>ADP_MKLDNN=0</c> turns it off
/// everywhere.</item>
/// <item>NNPACK off (<c>at::globalContext().setUserEnabledNNPACK(false)</c>, PyTorch's
/// <c>torch.backends.nnpack.set_flags(False)</c>; <c>ADP_NNPACK=1</c> keeps it): where oneDNN is off, libtorch runs a
/// convolution through NNPACK's fast (Winograd/FFT) kernels only when the batch has at least 16 rows
/// (<c>ConvParams::use_nnpack</c>), and through the exact per-image path otherwise, so a result would depend on the batch
/// size, against this toolkit's rule that per-image results do not. Seen in
/// CI (2026-11-30): the test suite, which runs with oneDNN off, got other outcomes for a batch of 8 images × 2 purification
/// runs (16 rows) than for batches of 3 (6 rows) on the CI host; the development machines cannot start NNPACK
/// ("Unsupported hardware") and never differed. Only those hosts lose speed, and only where oneDNN is off.</item>
/// <item>glibc's allocator keeps freed memory for reuse (<c>mallopt</c>: mmap threshold 32 MiB, the largest glibc accepts;
/// trim threshold 1 GiB; <c>ADP_MALLOC=0</c>, or glibc's own <c>MALLOC_MMAP_THRESHOLD_</c> / <c>MALLOC_TRIM_THRESHOLD_</c> or a
/// <c>glibc.malloc.*</c> entry in <c>GLIBC_TUNABLES</c>, keeps what glibc would do). glibc's defaults adjust the mmap threshold
/// as blocks are freed (up to 32 MiB) and trim the heap top beyond twice it, so the activations that libtorch frees and
/// allocates in every network call went back to the kernel and returned as fresh pages, each a page fault, which on these
/// virtual machines goes through the hypervisor (11% of a profiled gradient loop in the kernel). Measured (docs/BENCHMARKS.md,
/// one thread): a CIFAR-10 full-gradient iteration takes 35–40% less time. Values are unchanged (where a tensor lives does
/// not change what the kernels compute; only code reading uninitialised memory from <c>empty</c> could see stale data where it
/// saw zero pages, and the toolkit's results were checked bit for bit). The cost: up to 1 GiB of freed memory stays mapped
/// at the top of the main heap after a peak (blocks over 32 MiB and other threads' arenas are still returned); a
/// long-running <c>adp serve</c> on a memory-tight host can set <c>ADP_MALLOC=0</c>.</item>
/// <item><c>TORCH_CPP_LOG_LEVEL=ERROR</c> (unless set), applied through <c>c10::initLogging()</c> (PyTorch's Python module
/// calls it, TorchSharp never does): on CPUs that NNPACK does not recognise, libtorch writes "Could not initialize NNPACK!
/// Reason: Unsupported hardware." to stderr from every process that runs a convolution; no error, but it breaks the
/// toolkit's rule that a failure is one stderr line. <c>TORCH_CPP_LOG_LEVEL=WARNING</c> brings it back. The variable is
/// set with libc's <c>setenv</c>: native getenv does not see .NET's <c>Environment.SetEnvironmentVariable</c> on Unix.</item>
/// </list>
/// A no-op off Linux, or where a symbol is not found (another libtorch build).
/// </summary>
public static unsafe class NativeRuntime
{
    /// <summary>Environment variable: "1" keeps oneDNN for gradients, "0" turns it off everywhere (see the class summary).</summary>
    public const string MkldnnVariable = "ADP_MKLDNN";

    /// <summary>Environment variable: "1" keeps NNPACK (off otherwise; see the class summary).</summary>
    public const string NnpackVariable = "ADP_NNPACK";

    /// <summary>Environment variable: "0" leaves glibc's allocator at its defaults (see the class summary).</summary>
    public const string MallocVariable = "ADP_MALLOC";

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int MallOpt(int parameter, int value);

    private const int MTrimThreshold = -1, MMmapThreshold = -3;

    /// <summary>glibc's largest mmap threshold on 64-bit hosts (HEAP_MAX_SIZE / 2); blocks above it are mapped anyway.</summary>
    internal const int MmapThreshold = 32 << 20;

    /// <summary>Freed memory at the top of the heap that glibc keeps instead of returning it to the kernel.</summary>
    internal const int TrimThreshold = 1 << 30;

    /// <summary>Whether <see cref="Configure"/> set glibc's allocator to keep freed memory (see the class summary); false before
    /// it, where ADP_MALLOC=0 or glibc's own malloc variables are set, and off glibc.</summary>
    public static bool AllocatorTuned { get; private set; }

    /// <summary>The allocator settings of the class summary, unless the user chose others.</summary>
    private static void KeepFreedMemory()
    {
        if (UserChoseTheAllocator()) return;
        try { AllocatorTuned = MallOpt(MMmapThreshold, MmapThreshold) == 1 & MallOpt(MTrimThreshold, TrimThreshold) == 1; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }
    }

    /// <summary>Whether the environment keeps glibc's allocator as it is: <c>ADP_MALLOC=0</c>, or glibc's own settings
    /// (<c>MALLOC_MMAP_THRESHOLD_</c>, <c>MALLOC_TRIM_THRESHOLD_</c>, <c>glibc.malloc.</c> tunables in <c>GLIBC_TUNABLES</c>).</summary>
    public static bool UserChoseTheAllocator() =>
        Environment.GetEnvironmentVariable(MallocVariable) == "0"
        || Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_") is not null
        || Environment.GetEnvironmentVariable("MALLOC_TRIM_THRESHOLD_") is not null
        || (Environment.GetEnvironmentVariable("GLIBC_TUNABLES") ?? "").Contains("glibc.malloc.", StringComparison.Ordinal);

    [DllImport("libc", EntryPoint = "setenv")]
    private static extern int SetEnv(string name, string value, int overwrite);

    private static int _done;

    /// <summary>Applies the settings above once per process; loads libtorch. Call before any tensor operation, from one thread.</summary>
    /// <param name="mkldnnMode">"1", "0" or null (gradients without oneDNN); overrides <c>ADP_MKLDNN</c> when given.</param>
    public static void Configure(string? mkldnnMode = null)
    {
        if (Interlocked.Exchange(ref _done, 1) == 1 || !OperatingSystem.IsLinux()) return;
        // Two independent settings: a failure of one (e.g. no glibc setenv) must not skip the other.
        try { SetEnv("TORCH_CPP_LOG_LEVEL", "ERROR", 0); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }
        KeepFreedMemory();
        _ = TorchSharp.torch.get_num_threads();   // loads libtorch, and with it libc10
        try
        {
            // dlopen by soname returns the copies TorchSharp already loaded.
            if (NativeLibrary.TryLoad("libc10.so", out var c10) && NativeLibrary.TryGetExport(c10, "_ZN3c1011initLoggingEv", out var init))
                ((delegate* unmanaged<void>)init)();
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }
        if (!NativeLibrary.TryLoad("libtorch_cpu.so", out var cpu)
            || !NativeLibrary.TryGetExport(cpu, "_ZN2at13globalContextEv", out var context)) return;
        _context = ((delegate* unmanaged<IntPtr>)context)();
        if (NativeLibrary.TryGetExport(cpu, "_ZN2at7Context20setUserEnabledNNPACKEb", out var setNnpack)
            && NativeLibrary.TryGetExport(cpu, "_ZNK2at7Context17userEnabledNNPACKEv", out var getNnpack))
        {
            _getNnpack = getNnpack;
            byte keep = Environment.GetEnvironmentVariable(NnpackVariable) == "1" ? (byte)1 : (byte)0;
            ((delegate* unmanaged<IntPtr, byte, void>)setNnpack)(_context, keep);
        }
        if (NativeLibrary.TryGetExport(cpu, "_ZN2at7Context20setUserEnabledMkldnnEb", out var set)
            && NativeLibrary.TryGetExport(cpu, "_ZNK2at7Context17userEnabledMkldnnEv", out var get))
        {
            (_setMkldnn, _getMkldnn) = (set, get);
            SetMode(mkldnnMode ?? Environment.GetEnvironmentVariable(MkldnnVariable));
        }
    }

    private static IntPtr _getNnpack;

    /// <summary>Whether NNPACK is enabled in libtorch now (null where the symbols were not found or before
    /// <see cref="Configure"/>).</summary>
    public static bool? NnpackEnabled() => ReadFlag(_getNnpack);

    /// <summary>The value of one of libtorch's global-context flags, through its exported getter (null where not found).</summary>
    private static bool? ReadFlag(IntPtr getter) =>
        getter == IntPtr.Zero ? null : ((delegate* unmanaged<IntPtr, byte>)getter)(_context) != 0;

    /// <summary>"1": oneDNN everywhere; "0": nowhere; anything else: forward passes only. Tests switch modes with no
    /// scope open (their collection runs alone).</summary>
    internal static void SetMode(string? mode)
    {
        if (_setMkldnn == IntPtr.Zero) return;
        lock (Gate)
        {
            _guardBackward = mode != "1" && mode != "0";
            SetMkldnn(mode != "0");
        }
    }

    private static IntPtr _context, _setMkldnn, _getMkldnn;
    private static bool _guardBackward;
    private static readonly object Gate = new();
    // The switch is process-wide, the scopes are per thread: oneDNN is on when no Backward scope is open anywhere, or when the
    // only open ones are those the ForwardInBackward owner had opened when it entered (a Backward opened later, by any thread,
    // turns it off again until it closes).
    private static int _backwardDepth, _forwardDepth, _ownerBackwardDepth;
    private static int _forwardOwner = -1;
    [ThreadStatic] private static int t_backwardDepth;

    private static void SetMkldnn(bool on) => ((delegate* unmanaged<IntPtr, byte, void>)_setMkldnn)(_context, on ? (byte)1 : (byte)0);

    private static void Apply() => SetMkldnn(_backwardDepth == 0 || (_forwardDepth > 0 && _backwardDepth == _ownerBackwardDepth));

    /// <summary>Whether oneDNN is enabled in libtorch now (null where the symbols were not found or before
    /// <see cref="Configure"/>).</summary>
    public static bool? MkldnnEnabled() => ReadFlag(_getMkldnn);

    /// <summary>Wrap every <c>backward()</c> / <c>autograd.grad</c> call: oneDNN is off until the returned scope is disposed
    /// (scopes nest, and concurrent ones on other threads keep it off until the last closes). A no-op unless
    /// <see cref="Configure"/> found the symbols and <c>ADP_MKLDNN</c> is unset. Forward passes that run while any scope is
    /// open, on any thread, go without oneDNN (slower; equal to oneDNN's results to float rounding, not bit for bit), except
    /// inside <see cref="ForwardInBackward"/>. A process that must reproduce forward results exactly while another thread
    /// computes gradients sets <c>ADP_MKLDNN=0</c>; the CLI's commands compute on one thread.</summary>
    public static IDisposable Backward()
    {
        if (!_guardBackward) return NoScope.Instance;
        lock (Gate) { _backwardDepth++; t_backwardDepth++; Apply(); }
        return new Scope(() => { _backwardDepth--; t_backwardDepth--; });
    }

    /// <summary>Inside a <see cref="Backward"/> scope, a forward pass that is no gradient computation itself (a checkpointed
    /// segment's recomputation) may use oneDNN again until the returned scope is disposed; only while every open Backward
    /// scope is this thread's (otherwise a no-op: the forward pass runs without oneDNN), and a Backward scope opened inside
    /// it turns oneDNN off again.</summary>
    public static IDisposable ForwardInBackward()
    {
        lock (Gate)
        {
            int me = Environment.CurrentManagedThreadId;
            if (!_guardBackward || _backwardDepth == 0) return NoScope.Instance;
            if (_forwardOwner == -1)
            {
                if (t_backwardDepth != _backwardDepth) return NoScope.Instance;   // another thread is computing a gradient
                (_forwardOwner, _ownerBackwardDepth) = (me, _backwardDepth);
            }
            else if (_forwardOwner != me) return NoScope.Instance;
            _forwardDepth++;
            Apply();
        }
        return new Scope(() => { if (--_forwardDepth == 0) _forwardOwner = -1; });
    }

    private sealed class Scope(Action close) : IDisposable
    {
        private int _disposed;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
            lock (Gate) { close(); Apply(); }
        }
    }

    private sealed class NoScope : IDisposable
    {
        public static readonly NoScope Instance = new();
        public void Dispose() { }
    }

    // One region at a time in the process: TryStartNoGCRegion refuses a second one (parallel tests train on several threads).
    private static readonly object RegionGate = new();

    /// <summary>Ample for what an optimizer step or a gradient clip allocates (tensor and scalar wrappers, ~100 bytes each, a
    /// few per parameter or layer: well under 1 MB for the networks here), and far below the ephemeral limit.</summary>
    internal const long NoCollectionBudget = 16L << 20;

    /// <summary>
    /// Runs library code that passes implicitly converted scalars to libtorch, where this project cannot hold them (TorchSharp
    /// 0.107's optimizers: Adam's <c>add_(eps)</c>, <c>mul_(beta1)</c>; <c>clip_grad_norm_</c>; BatchNorm's training-mode
    /// <c>num_batches_tracked.add_(1)</c>, so a classifier's training step), with garbage collection
    /// held off (<see cref="GC.TryStartNoGCRegion(long)"/>), so no collection can finalize such a temporary during its native
    /// call. Seen without it: a Fashion-MNIST training stopped twice with "Expected false to be true …
    /// toFloat" from <c>Adam.step</c> → <c>add_</c> (2026-11-30 and 2026-12-01, in ~4,300 iterations). If the body allocates more than
    /// <see cref="NoCollectionBudget"/> the runtime collects anyway and the region ends early (the body still completes);
    /// the race is then only as likely as without the region. The budget counts every thread's allocations; an explicit
    /// <c>GC.Collect</c> also ends the region (none in this project); where the runtime refuses a region the body runs unprotected.
    /// Starting a region makes the runtime collect first (a full blocking collection: 2,000 regions made 2,000 gen-2
    /// collections, ~0.2 ms each on a test process's heap), so a training opens one region per iteration, not one per call.
    /// </summary>
    /// <param name="body">the code to run; its exceptions propagate after the region is ended.</param>
    public static void WithoutCollection(Action body)
    {
        lock (RegionGate)
        {
            bool started = GCSettings.LatencyMode != GCLatencyMode.NoGCRegion && TryStartRegion();
            try { body(); }
            finally
            {
                // A collection forced by an over-budget allocation (or an explicit GC.Collect on another thread, which this project
                // never makes) has already ended the region; ending it again would throw.
                if (started && GCSettings.LatencyMode == GCLatencyMode.NoGCRegion)
                    try { GC.EndNoGCRegion(); } catch (InvalidOperationException) { /* ended between the check and the call */ }
            }
        }
    }

    // false where the runtime cannot give the budget (too large for its heap kind, not enough memory, a region started outside
    // this class): the body then runs unprotected, as it would without this class, rather than not at all.
    private static bool TryStartRegion()
    {
        try { return GC.TryStartNoGCRegion(NoCollectionBudget); }
        catch (Exception e) when (e is ArgumentOutOfRangeException or InvalidOperationException) { return false; }
    }

    /// <summary>As <see cref="WithoutCollection(Action)"/>, returning the body's value.</summary>
    public static T WithoutCollection<T>(Func<T> body)
    {
        T result = default!;
        WithoutCollection(() => { result = body(); });
        return result;
    }
}
