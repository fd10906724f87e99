using Adp.IO;
using Adp.Models;
using static TorchSharp.torch;

namespace Adp.Tests;

public class Ncsnv2ParityTests
{
    internal static Ncsnv2 LoadReference(SafeTensors.File f, int channels, int size)
    {
        var sigmas = f.Get("score.sigmas");
        var cfg = new ScoreModelConfig(channels, size, (int)f.Get("score.begin_conv.weight").shape[0],
            sigmas[0].item<float>(), sigmas[-1].item<float>(), (int)sigmas.shape[0]);
        var net = new Ncsnv2(cfg);
        StateDictLoader.Load(net, f.Tensors, "score.", f.Path);
        net.eval();
        return net;
    }

    internal static void AssertClose(Tensor expected, Tensor actual, double atol, double rtol, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        var diff = (expected - actual).abs();
        var tol = expected.abs().Times(rtol).Plus(atol);
        var worst = (diff - tol).max().item<float>();
        Assert.True(worst <= 0, $"{what}: max |diff| {diff.max().item<float>():G4} exceeds tolerance");
    }

    [ReferenceFact]
    public void MnistNgf16_HMatchesPyTorch()
    {
        using var f = SafeTensors.Load(TestEnvironment.ReferenceFile("ncsnv2_mnist_ngf16_a.safetensors"));
        using var net = LoadReference(f, 1, 28);
        using var _ = no_grad();
        AssertClose(f.Get("h_x"), net.forward(f.Get("x")), 1e-4, 1e-4, "h_x");
    }

    [ReferenceFact]
    public void CifarNgf16_HMatchesPyTorch()
    {
        using var f = SafeTensors.Load(TestEnvironment.ReferenceFile("ncsnv2_cifar_ngf16_a.safetensors"));
        using var net = LoadReference(f, 3, 32);
        using var _ = no_grad();
        AssertClose(f.Get("h_x"), net.forward(f.Get("x")), 1e-4, 1e-4, "h_x");
    }

    [Fact]
    public void ChannelsLastLayout_ComputesTheSameFunction_AndExportsCorrectly()
    {
        manual_seed(3);
        using var net = new Ncsnv2(new ScoreModelConfig(3, 32, 8, 1.0, 0.01, 4));
        using var x = rand(4, 3, 32, 32, generator: new Generator(5));
        using var _ = no_grad();
        net.ChannelsLast = false;
        using var nchw = net.forward(x);
        net.ChannelsLast = true;
        using var cl = net.forward(x);
        // the weights now live NHWC in memory; the output must not depend on that
        Assert.Equal(1, net.get_parameter("end_conv.weight")!.stride()[1]);
        AssertClose(nchw, cl, 1e-5, 1e-5, "channels-last vs NCHW");

        // export after the layout change writes the logical (NCHW) order, so a fresh model reproduces the output
        var path = Path.Combine(Directory.CreateTempSubdirectory("adp-cl-").FullName, "m.safetensors");
        ScoreModelFile.ExportSafeTensors(net, path);
        using var back = ScoreModelFile.ImportPyTorch(path, net.Config);
        back.ChannelsLast = false;
        AssertClose(cl, back.forward(x), 1e-5, 1e-5, "exported and re-imported");
    }
}
