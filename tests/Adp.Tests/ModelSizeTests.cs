using Adp.Models;

namespace Adp.Tests;

/// <summary>The element counts loaders use to refuse configurations that claim more weights than a file holds equal
/// the state_dict of the networks as built. (In the serial "fuzz" collection: building networks draws from libtorch's
/// global generator, which tests of seeded training rely on.)</summary>
[Collection("fuzz")]
public class ModelSizeTests
{
    private static long Elements(TorchSharp.torch.nn.Module net) => net.state_dict().Values.Sum(t => t.numel());

    [Theory]
    [InlineData(1, 28, 1)]
    [InlineData(1, 28, 2)]
    [InlineData(3, 32, 3)]
    [InlineData(1, 32, 5)]
    public void ScoreModel(int channels, int size, int ngf)
    {
        var cfg = new ScoreModelConfig(channels, size, ngf, 1, 0.01, 4);
        using var net = new Ncsnv2(cfg);
        Assert.Equal(Elements(net), ModelSize.ScoreModelElements(cfg));
    }

    public static TheoryData<ClassifierConfig> Classifiers => new()
    {
        ClassifierConfig.SmallCnn(),
        ClassifierConfig.SmallCnn(3, 32) with { NumClasses = 7 },
        new ClassifierConfig(ClassifierArchitecture.WideResNet, 1, 28, 10, 10, 1),
        new ClassifierConfig(ClassifierArchitecture.WideResNet, 3, 32, 10, 16, 2, 0.3, ClassifierConfig.CifarMean, ClassifierConfig.CifarStd),
        new ClassifierConfig(ClassifierArchitecture.ResNet, 3, 32, 10, 10, 2),
        new ClassifierConfig(ClassifierArchitecture.ResNet, 1, 28, 10, 18, 2),
        new ClassifierConfig(ClassifierArchitecture.ResNet, 3, 32, 10, 34, 1),
    };

    [Theory]
    [MemberData(nameof(Classifiers))]
    public void Classifier(ClassifierConfig cfg)
    {
        cfg.Validate();
        using var net = Adp.Models.Classifier.Create(cfg);
        Assert.Equal(Elements(net), ModelSize.ClassifierElements(cfg));
    }

    [Fact]
    public void HugeConfigurationsSaturate()
    {
        Assert.Equal(long.MaxValue, ModelSize.ScoreModelElements(new ScoreModelConfig(1, 28, int.MaxValue, 1, 0.01, 2)));
        Assert.Equal(long.MaxValue, ModelSize.ClassifierElements(new ClassifierConfig(ClassifierArchitecture.WideResNet, 3, 32, 10, int.MaxValue - 1, int.MaxValue)));
    }
}
