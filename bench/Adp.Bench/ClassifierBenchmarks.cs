using System.Diagnostics;
using Adp.Data;
using Adp.Models;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Adp.Bench;

public static class ClassifierBenchmarks
{
    /// <summary>Training images/s of a shipped recipe's architecture (SGD step with cross-entropy, augmentation
    /// excluded), e.g. arch=smallcnn or arch=resnet-small.</summary>
    public static void Training(Dictionary<string, string> kv)
    {
        string arch = kv.GetValueOrDefault("arch", "smallcnn");
        int batch = int.Parse(kv.GetValueOrDefault("batch", "128")), iters = int.Parse(kv.GetValueOrDefault("iters", "20"));
        var cfg = arch switch
        {
            "smallcnn" => ClassifierConfig.SmallCnn(),
            "resnet-small" => ClassifierConfig.ResNetSmall,
            "resnet18" => ClassifierConfig.ResNet18,
            "wrn-28-10" => ClassifierConfig.Wrn28x10,
            _ => throw new ArgumentException($"unknown arch {arch}"),
        };
        using var net = Classifier.Create(cfg);
        net.train();
        var opt = optim.SGD(net.parameters(), 0.01, 0.9, weight_decay: 5e-4);
        using var g = new Generator(0, CPU);
        var sw = new Stopwatch();
        for (int i = 0; i < iters + 3; i++)
        {
            if (i == 3) sw.Start();
            using var scope = NewDisposeScope();
            var x = rand(new long[] { batch, cfg.Channels, cfg.ImageSize, cfg.ImageSize }, generator: g);
            var y = randint(10, new long[] { batch }, generator: g);
            opt.zero_grad();
            using (Adp.NativeRuntime.Backward()) F.cross_entropy(net.forward(x), y).backward();
            NativeRuntime.WithoutCollection(() => opt.step());  // TorchSharp's step converts scalars implicitly
        }
        Console.WriteLine($"classifier-train {cfg.Describe()} batch={batch}: {iters * batch / sw.Elapsed.TotalSeconds:F1} images/s");
    }
}
