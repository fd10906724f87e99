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

    /// <summary>Checks what a configuration read from a file must satisfy before a network is built from it; throws
    /// <see cref="AdpException"/> naming the field.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Architecture)) throw new AdpException($"classifier: unknown architecture {Architecture}");
        if (Channels is not (1 or 3)) throw new AdpException($"classifier: channels must be 1 or 3, got {Channels}");
        if (ImageSize is not (28 or 32)) throw new AdpException($"classifier: image size must be 28 or 32, got {ImageSize}");
        if (NumClasses is < 2 or > 1000) throw new AdpException($"classifier: number of classes must be 2…1000, got {NumClasses}");
        if (!(Dropout >= 0 && Dropout < 1)) throw new AdpException($"classifier: dropout must be in [0, 1), got {Dropout}");
        switch (Architecture)
        {
            case ClassifierArchitecture.WideResNet when Depth < 10 || (Depth - 4) % 6 != 0:
                throw new AdpException($"classifier: WideResNet depth must be 6n+4 with n ≥ 1, got {Depth}");
            case ClassifierArchitecture.ResNet when Depth is not (10 or 18 or 34):
                throw new AdpException($"classifier: ResNet depth must be 10, 18 or 34, got {Depth}");
            case ClassifierArchitecture.WideResNet or ClassifierArchitecture.ResNet when Width < 1:
                throw new AdpException($"classifier: width must be ≥ 1, got {Width}");
        }
        foreach (var (name, v) in new[] { ("mean", Mean), ("std", Std) })
            if (v is not null && (v.Length != Channels || v.Any(x => !float.IsFinite(x)) || (name == "std" && v.Any(x => x <= 0))))
                throw new AdpException($"classifier: input {name} must be {Channels} finite{(name == "std" ? " positive" : "")} numbers, got [{string.Join(", ", v)}]");
        if ((Mean is null) != (Std is null)) throw new AdpException("classifier: input mean and std must be given together");
    }

    // Records compare arrays by reference; compare contents so a saved config equals a requested one.
    public bool Equals(ClassifierConfig? other) =>
        other is not null && Architecture == other.Architecture && Channels == other.Channels && ImageSize == other.ImageSize &&
        NumClasses == other.NumClasses && Depth == other.Depth && Width == other.Width && Dropout == other.Dropout &&
        (Mean ?? []).SequenceEqual(other.Mean ?? []) && (Std ?? []).SequenceEqual(other.Std ?? []);

    public override int GetHashCode() => HashCode.Combine(Architecture, Channels, ImageSize, NumClasses, Depth, Width, Dropout);
}
