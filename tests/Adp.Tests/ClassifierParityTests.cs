using Adp.IO;
using Adp.Models;
using static TorchSharp.torch;

namespace Adp.Tests;

public class ClassifierParityTests
{
    [ReferenceFact]
    public void SmallCnn_LogitsMatchPyTorch()
    {
        using var f = SafeTensors.Load(TestEnvironment.ReferenceFile("smallcnn_mnist_a.safetensors"));
        using var net = Classifier.Create(ClassifierConfig.SmallCnn());
        StateDictLoader.Load(net, f.Tensors, "clf.", f.Path);
        net.eval();
        using var _ = no_grad();
        Ncsnv2ParityTests.AssertClose(f.Get("logits"), net.forward(f.Get("x")), 1e-4, 1e-4, "logits");
    }

    [ReferenceFact]
    public void WideResNet10x2_LogitsMatchPyTorch()
    {
        using var f = SafeTensors.Load(TestEnvironment.ReferenceFile("wideresnet_10_2_a.safetensors"));
        var cfg = ClassifierConfig.Wrn28x10 with { Depth = 10, Width = 2 };
        using var net = Classifier.Create(cfg);
        StateDictLoader.Load(net, f.Tensors, "clf.", f.Path);
        net.eval();
        using var _ = no_grad();
        Ncsnv2ParityTests.AssertClose(f.Get("logits"), net.forward(f.Get("x")), 1e-4, 1e-4, "logits");
    }

    [ReferenceFact]
    public void MisshapenTensor_IsAClearError()
    {
        using var f = SafeTensors.Load(TestEnvironment.ReferenceFile("smallcnn_mnist_a.safetensors"));
        using var net = Classifier.Create(ClassifierConfig.SmallCnn() with { NumClasses = 11 });
        var e = Assert.Throws<AdpException>(() => StateDictLoader.Load(net, f.Tensors, "clf.", f.Path));
        Assert.Contains("clf.fc2.weight is [10,1024], expected [11,1024]", e.Message);
        using var wide = Classifier.Create(ClassifierConfig.Wrn28x10 with { Depth = 10, Width = 2 });
        var missing = Assert.Throws<AdpException>(() => StateDictLoader.Load(wide, f.Tensors, "clf.", f.Path));
        Assert.Contains("missing", missing.Message);
    }
}
