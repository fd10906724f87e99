using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace Adp.Tests;

/// <summary>The CLI's native runtime mode (<see cref="NativeRuntime"/>: gradients without oneDNN, forward passes with it),
/// switched on for these tests only: the rest of the suite runs with oneDNN off (TestEnvironment), and this collection runs
/// alone.</summary>
[Collection(GlobalRngCollection.Name)]
public class NativeRuntimeTests
{
    [DllImport("libc", EntryPoint = "getenv")]
    private static extern IntPtr GetEnv(string name);

    /// <summary>The oneDNN state seen inside <paramref name="scope"/> opened on a new thread.</summary>
    private static bool? OnAnotherThread(Func<IDisposable> scope)
    {
        bool? seen = null;
        var t = new Thread(() => { using (scope()) seen = NativeRuntime.MkldnnEnabled(); });
        t.Start();
        t.Join();
        return seen;
    }

    /// <summary>Runs <paramref name="body"/> in the CLI's mode (ADP_MKLDNN as set, else the default), then restores the
    /// suite's.</summary>
    private static void InCliMode(Action<string?> body)
    {
        var mode = Environment.GetEnvironmentVariable(NativeRuntime.MkldnnVariable);
        NativeRuntime.SetMode(mode);
        try { body(mode); }
        finally { NativeRuntime.SetMode(mode ?? "0"); }
    }

    /// <summary>NNPACK is off unless ADP_NNPACK=1: libtorch uses it only for batches of 16 rows or more, so with it a result
    /// would depend on the batch size. With it off (and oneDNN off, the suite's mode) a convolution of 19 images in one
    /// batch equals the same images in batches of 3, bit for bit; on a host that can run NNPACK, the first would go through
    /// its Winograd kernels and differ by float rounding.</summary>
    [Fact]
    public void Nnpack_IsOff_SoAConvolutionDoesNotDependOnTheBatchSize()
    {
        if (!OperatingSystem.IsLinux()) return;
        Assert.Equal(Environment.GetEnvironmentVariable(NativeRuntime.NnpackVariable) == "1", NativeRuntime.NnpackEnabled());
        using var scope = NewDisposeScope();
        using var g = new Generator(5);
        var x = randn([19, 3, 12, 12], generator: g);
        var w = randn([8, 3, 3, 3], generator: g);
        using var _ = no_grad();
        var whole = nn.functional.conv2d(x, w, padding: [1, 1]);
        var parts = cat(Enumerable.Range(0, 7).Select(i => nn.functional.conv2d(x.narrow(0, 3 * i, Math.Min(3, 19 - 3 * i)), w,
            padding: [1, 1])).ToArray(), 0);
        Assert.True(whole.eq(parts).all().item<bool>(),
            $"batch of 19 vs batches of 3 differ by {(whole - parts).abs().max().item<float>()}");
    }

    [Fact]
    public void OneDnn_IsOffInsideBackwardScopes_AndOnForForwardPasses() => InCliMode(mode =>
    {
        if (!OperatingSystem.IsLinux()) return;
        Assert.Equal(mode != "0", NativeRuntime.MkldnnEnabled());
        using (NativeRuntime.Backward())
        {
            Assert.Equal(mode == "1", NativeRuntime.MkldnnEnabled());
            using (NativeRuntime.Backward()) Assert.Equal(mode == "1", NativeRuntime.MkldnnEnabled());   // nested: still off
            Assert.Equal(mode == "1", NativeRuntime.MkldnnEnabled());
            using (NativeRuntime.ForwardInBackward())
            {
                Assert.Equal(mode != "0", NativeRuntime.MkldnnEnabled());
                using (NativeRuntime.ForwardInBackward()) Assert.Equal(mode != "0", NativeRuntime.MkldnnEnabled());
                Assert.Equal(mode != "0", NativeRuntime.MkldnnEnabled());   // the inner forward scope closing keeps it on
                using (NativeRuntime.Backward()) Assert.Equal(mode == "1", NativeRuntime.MkldnnEnabled());   // a gradient inside: off
                Assert.Equal(mode != "0", NativeRuntime.MkldnnEnabled());
                // Another thread's gradient while the forward scope is open: off until it ends.
                Assert.Equal(mode == "1", OnAnotherThread(NativeRuntime.Backward));
                Assert.Equal(mode != "0", NativeRuntime.MkldnnEnabled());
            }
            Assert.Equal(mode == "1", NativeRuntime.MkldnnEnabled());
            // A forward scope on a thread that holds none of the open gradient scopes changes nothing.
            Assert.Equal(mode == "1", OnAnotherThread(NativeRuntime.ForwardInBackward));
        }
        Assert.Equal(mode != "0", NativeRuntime.MkldnnEnabled());
        Assert.Equal(Environment.GetEnvironmentVariable("TORCH_CPP_LOG_LEVEL") ?? "ERROR", Marshal.PtrToStringAnsi(GetEnv("TORCH_CPP_LOG_LEVEL")));
    });

    /// <summary>Every process that calls <see cref="NativeRuntime.Configure"/> (this one did, in TestEnvironment) keeps freed memory
    /// in glibc's allocator (docs/BENCHMARKS.md: a CIFAR-10 full-gradient iteration in 35–40% less time on these machines,
    /// adversarial examples bit for bit the same), unless ADP_MALLOC=0 or the user set glibc's own malloc variables. Checks the
    /// wiring (Configure calls it, glibc accepts both values); skipped off glibc.</summary>
    [Fact]
    public void Allocator_KeepsFreedMemory_UnlessTheUserChoseOtherwise()
    {
        if (!OperatingSystem.IsLinux() || !NativeLibrary.TryLoad("libc.so.6", out var libc)
            || !NativeLibrary.TryGetExport(libc, "gnu_get_libc_version", out _)) return;
        Assert.Equal(!NativeRuntime.UserChoseTheAllocator(), NativeRuntime.AllocatorTuned);
    }

    /// <summary>
    /// Gradients as the toolkit computes them (forward with oneDNN, backward inside <see cref="NativeRuntime.Backward"/>) equal
    /// float64's (no oneDNN kernels for doubles) to float32 rounding. With oneDNN in the backward pass, libtorch 2.10 on this
    /// project's AVX-512 machines returns wrong input gradients for every stride-1 3×3 and 5×5 convolution whose output
    /// channels are not a multiple of 16 (relative errors 0.2–1.1, sometimes ∞), and for strided 3×3 ones from 48 channels
    /// (`adp-bench onednn-ops`, docs/BENCHMARKS.md): the score network's last convolution (ngf → 1 or 3 channels) is such
    /// a case, so every attack's gradient would be wrong. The cases below are of those kinds, and a whole small score network.
    /// Tolerance: an input-gradient entry sums at most co·k² = 600 float32 products here, a weight-gradient entry
    /// batch·H′·W′ ≤ 8·28·28 = 6,272; with round-off growing as the square root of the terms (~1e-6 relative, the worst-case
    /// N·ε bound ~4e-4 is not what float32 sums show) a bound of 1e-4 of the largest entry has a wide margin; the whole
    /// network's relative error without oneDNN in the backward pass measured 8.6e-7 (docs/BENCHMARKS.md), the wrong kernels'
    /// are above 0.2. On machines whose kernels are sound this passes either way.
    /// </summary>
    [Fact]
    public void Gradients_EqualFloat64s_ToFloat32Rounding_WithTheToolkitsOneDnnSettings() => InCliMode(_ =>
    {
        using var g = new Generator(11);
        var failures = new List<string>();
        void Check(string what, Tensor g32, Tensor g64)
        {
            double err = (g32.to(ScalarType.Float64) - g64).abs().max().item<double>() / g64.abs().max().item<double>();
            if (!(err < 1e-4)) failures.Add($"{what}: relative error {err:G3}");
        }
        var convolutions = new[]
        {
            (32L, 1L, 3L, 1L, 1L), (32L, 3L, 3L, 1L, 1L), (8L, 8L, 3L, 2L, 1L), (16L, 24L, 5L, 1L, 1L), (48L, 32L, 3L, 1L, 2L),
        };
        foreach (var (ci, co, k, d, s) in convolutions)
            foreach (long size in new long[] { 7, 28 })
            {
                using var scope = NewDisposeScope();
                var x = randn([8, ci, size, size], generator: g);
                var w = randn([co, ci, k, k], generator: g);
                Tensor Conv(Tensor a, Tensor b) => nn.functional.conv2d(a, b, strides: [s, s], padding: [d * (k / 2), d * (k / 2)],
                    dilation: [d, d]);
                var (x32, w32) = (x.detach().requires_grad_(true), w.detach().requires_grad_(true));
                var y = Conv(x32, w32);
                var v = randn(y.shape, generator: g);
                IList<Tensor> g32;
                using (NativeRuntime.Backward()) g32 = autograd.grad([y.mul(v).sum()], [x32, w32]);
                var (x64, w64) = (x.to(ScalarType.Float64).requires_grad_(true), w.to(ScalarType.Float64).requires_grad_(true));
                var g64 = autograd.grad([Conv(x64, w64).mul(v.to(ScalarType.Float64)).sum()], [x64, w64]);
                Check($"conv {ci}→{co} {k}×{k} dilation {d} stride {s} at {size}×{size}, input", g32[0], g64[0]);
                Check($"conv {ci}→{co} {k}×{k} dilation {d} stride {s} at {size}×{size}, weight", g32[1], g64[1]);
            }
        using (var scope = NewDisposeScope())
        {
            manual_seed(3);
            using var net = new Models.Ncsnv2(new Models.ScoreModelConfig(1, 28, 8, 1.0, 0.01, 5));
            using var net64 = new Models.Ncsnv2(net.Config);
            net64.load_state_dict(net.state_dict());
            TorchSharp.ModuleExtensionMethods.to(net64, ScalarType.Float64);
            net.eval();
            net64.eval();
            var x = rand([4, 1, 28, 28], generator: g);
            var v = randn(x.shape, generator: g);
            // Frozen weights (as attacks run the network) and trainable ones (as trainings do).
            var x64 = x.to(ScalarType.Float64).requires_grad_(true);
            var g64 = autograd.grad([net64.forward(x64).mul(v.to(ScalarType.Float64)).sum()], [x64])[0];
            foreach (bool frozen in new[] { true, false })
            {
                foreach (var p in net.parameters()) p.requires_grad_(!frozen);
                var x32 = x.detach().requires_grad_(true);
                var y = net.forward(x32);
                Tensor g32;
                using (NativeRuntime.Backward()) g32 = autograd.grad([y.mul(v).sum()], [x32])[0];
                Check($"NCSNv2 ngf 8 at 28×28, input, {(frozen ? "frozen" : "trainable")} weights", g32, g64);
            }
        }
        Assert.True(failures.Count == 0, string.Join("; ", failures));
    });

    /// <summary>With oneDNN, on this project's AVX-512 machines, backward calls of these convolutions returned NaN
    /// gradients now and then (2–632 in 3,000, five trials); 3,000 calls all finite is what the settings must give. On
    /// machines whose kernels are sound this passes either way.</summary>
    [Fact]
    public void ConvolutionBackward_IsFinite_InThousandsOfCalls_AndInShortTrainings() => InCliMode(_ =>
    {
        int bad = 0;
        foreach (var (dilation, size) in new[] { (1, 7), (2, 7), (4, 7), (2, 14), (1, 28) })
        {
            manual_seed(1);
            using var conv = nn.Conv2d(8, 8, 3, padding: dilation, dilation: dilation);
            for (int r = 0; r < 600; r++)
            {
                using var scope = NewDisposeScope();
                var x = randn(8, 8, size, size).requires_grad_(true);
                var y = conv.call(x);   // forward with oneDNN, gradient without, as the toolkit computes them
                using (NativeRuntime.Backward()) y.sum().backward();
                if (!x.grad!.isfinite().all().item<bool>() || !conv.weight!.grad!.isfinite().all().item<bool>()) bad++;
                conv.zero_grad();
            }
        }
        Assert.Equal(0, bad);
        // The whole network: with oneDNN about half of these five-iteration trainings got a NaN gradient (the trainer stops).
        using var data = ScoreTrainingTests.SyntheticDataset();
        var dir = Directory.CreateTempSubdirectory("adp-native-").FullName;
        try
        {
            for (int k = 0; k < 6; k++)
            {
                var o = new Training.ScoreTrainingOptions
                {
                    Dataset = "fashion-mnist", Model = new Models.ScoreModelConfig(1, 28, 4, 1.0, 0.01, 5), Iterations = 5, BatchSize = 8,
                    LearningRate = 1e-3, Seed = 7, CheckpointEvery = 0,
                };
                Assert.Equal(5, new Training.ScoreTrainer(o, data, Path.Combine(dir, $"r{k}.ckpt")).Run(false));
            }
        }
        finally { Directory.Delete(dir, true); }
    });

    /// <summary>TorchSharp's optimizer steps run inside <see cref="NativeRuntime.WithoutCollection(Action)"/>: while the body runs,
    /// the process is in a no-GC region, so 8 MB of small allocations on another thread (a progress thread's allocations, many
    /// times over) cause no collection that could finalize a scalar in a native call; afterwards the mode is restored, also
    /// when the body throws, when calls nest, and when the body allocates past the budget (the runtime then ends the region
    /// itself, and ending it again must not throw).</summary>
    [Fact]
    public void WithoutCollection_HoldsCollectionsOffDuringTheBody_AndRestoresTheMode()
    {
        Assert.NotEqual(System.Runtime.GCLatencyMode.NoGCRegion, System.Runtime.GCSettings.LatencyMode);
        var inside = System.Runtime.GCLatencyMode.Batch;
        int before = -1, after = -2;
        NativeRuntime.WithoutCollection(() =>
        {
            inside = System.Runtime.GCSettings.LatencyMode;
            before = GC.CollectionCount(0);
            var t = new Thread(() => { var keep = new List<byte[]>(); for (int i = 0; i < 80_000; i++) keep.Add(new byte[100]); });
            t.Start();
            t.Join();
            after = GC.CollectionCount(0);
        });
        Assert.Equal(System.Runtime.GCLatencyMode.NoGCRegion, inside);
        Assert.Equal(before, after);
        Assert.NotEqual(System.Runtime.GCLatencyMode.NoGCRegion, System.Runtime.GCSettings.LatencyMode);

        var e = Assert.Throws<InvalidOperationException>(() =>
            NativeRuntime.WithoutCollection(() => NativeRuntime.WithoutCollection(() => throw new InvalidOperationException("body"))));
        Assert.Equal("body", e.Message);
        Assert.NotEqual(System.Runtime.GCLatencyMode.NoGCRegion, System.Runtime.GCSettings.LatencyMode);

        long big = NativeRuntime.WithoutCollection(() =>
            Enumerable.Range(0, 3).Sum(_ => (long)new byte[NativeRuntime.NoCollectionBudget].Length));
        Assert.Equal(3 * NativeRuntime.NoCollectionBudget, big);
        Assert.NotEqual(System.Runtime.GCLatencyMode.NoGCRegion, System.Runtime.GCSettings.LatencyMode);
    }

    /// <summary>Regions must not starve the collector: a training starts one or two per iteration, and starting one sets the
    /// young generation's budget to the region's size. 2,000 regions, each followed by 100 KB of garbage (about an iteration's worth),
    /// must still see collections; were the budget reset to more than 100 KB at every start, none would run.</summary>
    [Fact]
    public void WithoutCollection_InALoop_LeavesCollectionsToHappenBetweenRegions()
    {
        int before = GC.CollectionCount(0);
        for (int i = 0; i < 2000; i++)
        {
            NativeRuntime.WithoutCollection(() => { });
            var garbage = new List<byte[]>();
            for (int k = 0; k < 819; k++) garbage.Add(new byte[100]);
        }
        Assert.True(GC.CollectionCount(0) > before, "no gen-0 collection in 200 MB of garbage between 2,000 regions");
    }
    /// <summary>The classifier trainer runs its training-mode forward pass in a region (BatchNorm's unheld counter scalar): the
    /// managed allocations of that pass (tensor wrappers, one or a few per layer) must sit well inside the region's budget, or
    /// the runtime would collect during it and the region would protect nothing. Measured for the largest shipped
    /// architectures on a batch of 2 (wrappers do not grow with the batch); a quarter of the budget leaves room for other threads.</summary>
    [Theory]
    [InlineData("wrn")]
    [InlineData("resnet18")]
    public void WithoutCollection_Budget_CoversATrainingForwardPass(string architecture)
    {
        var config = architecture == "wrn" ? Models.ClassifierConfig.Wrn28x10 with { Width = 2 } : Models.ClassifierConfig.ResNet18;
        using var net = Models.Classifier.Create(config);
        net.train();
        using var scope = NewDisposeScope();
        var x = rand(2, 3, 32, 32);
        net.forward(x);  // first call: JIT compilation and caches, not the steady state
        long before = GC.GetAllocatedBytesForCurrentThread();
        net.forward(x);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < NativeRuntime.NoCollectionBudget / 4, $"{architecture}: a training forward pass allocated {allocated:N0} bytes");
    }
}
