namespace Adp.Models;

public enum ClassifierArchitecture { SmallCnn, WideResNet, ResNet }

/// <summary>
/// A classifier that maps [0,1] images to logits. Input normalization (per-channel mean/std) is part of the
/// model. <see cref="Depth"/>/<see cref="Width"/> mean depth and widen factor for WideResNet, and the number of
/// blocks per stage ([2,2,2,2] for 18) and base width for ResNet.
/// </summary>
public sealed record ClassifierConfig(
    ClassifierArchitecture Architecture,
    int Channels,
    int ImageSize,
    int NumClasses = 10,
    int Depth = 0,
    int Width = 0,
    double Dropout = 0,
    float[]? Mean = null,
    float[]? Std = null)
{
    public static readonly float[] CifarMean = [0.4914f, 0.4822f, 0.4465f];
    public static readonly float[] CifarStd = [0.2023f, 0.1994f, 0.2010f];

    public static ClassifierConfig SmallCnn(int channels = 1, int size = 28) => new(ClassifierArchitecture.SmallCnn, channels, size);
    /// <summary>The paper's CIFAR-10 classifier: WRN-28-10, dropout 0.3.</summary>
    public static ClassifierConfig Wrn28x10 => new(ClassifierArchitecture.WideResNet, 3, 32, 10, 28, 10, 0.3, CifarMean, CifarStd);
    public static ClassifierConfig ResNet18 => new(ClassifierArchitecture.ResNet, 3, 32, 10, 18, 64, 0, CifarMean, CifarStd);
    /// <summary>A CPU-sized CIFAR ResNet: ResNet-18's layout at a quarter of the width.</summary>
    public static ClassifierConfig ResNetSmall => new(ClassifierArchitecture.ResNet, 3, 32, 10, 18, 16, 0, CifarMean, CifarStd);

    public string Describe() => Architecture switch
    {
        ClassifierArchitecture.SmallCnn => "small CNN (conv5x5-32, pool, conv5x5-64, pool, fc1024, fc10)",
        ClassifierArchitecture.WideResNet => $"WRN-{Depth}-{Width} (dropout {Dropout})",
        _ => $"ResNet-{Depth} (base width {Width})",
    };

    // Records compare arrays by reference; compare contents so a saved config equals a requested one.
    public bool Equals(ClassifierConfig? other) =>
        other is not null && Architecture == other.Architecture && Channels == other.Channels && ImageSize == other.ImageSize &&
        NumClasses == other.NumClasses && Depth == other.Depth && Width == other.Width && Dropout == other.Dropout &&
        (Mean ?? []).SequenceEqual(other.Mean ?? []) && (Std ?? []).SequenceEqual(other.Std ?? []);

    public override int GetHashCode() => HashCode.Combine(Architecture, Channels, ImageSize, NumClasses, Depth, Width, Dropout);
}
