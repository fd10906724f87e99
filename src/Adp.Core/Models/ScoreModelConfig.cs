namespace Adp.Models;

/// <summary>
/// Architecture and noise schedule of an NCSNv2 score model. σ levels are geometric from
/// <see cref="SigmaMax"/> (σ_1) down to <see cref="SigmaMin"/> (σ_L), <see cref="NumLevels"/> of them.
/// </summary>
public sealed record ScoreModelConfig(
    int Channels = 1,
    int ImageSize = 28,
    int Ngf = 32,
    double SigmaMax = 1.0,
    double SigmaMin = 0.01,
    int NumLevels = 10)
{
    /// <summary>Defaults chosen for 28×28 grayscale data on a CPU: σ range matched to purification (METHOD.md §1).</summary>
    public static ScoreModelConfig Mnist => new(1, 28, 32, 1.0, 0.01, 10);
    public static ScoreModelConfig FashionMnist => new(1, 28, 32, 1.0, 0.01, 10);
    /// <summary>The paper's CIFAR-10 model: ngf 128, σ 50 → 0.01, L = 232.</summary>
    public static ScoreModelConfig Cifar10 => new(3, 32, 128, 50.0, 0.01, 232);

    public static ScoreModelConfig ForDataset(string name) => name switch
    {
        "mnist" => Mnist,
        "fashion-mnist" => FashionMnist,
        "cifar-10" => Cifar10,
        _ => throw new AdpException($"no score-model defaults for data set '{name}'"),
    };

    public double[] Sigmas()
    {
        if (NumLevels == 1) return [SigmaMax];
        var s = new double[NumLevels];
        double ratio = Math.Log(SigmaMin / SigmaMax) / (NumLevels - 1);
        for (int i = 0; i < NumLevels; i++) s[i] = SigmaMax * Math.Exp(ratio * i);
        return s;
    }

    public void Validate()
    {
        if (Channels is not (1 or 3)) throw new AdpException($"score model: channels must be 1 or 3, got {Channels}");
        if (ImageSize is not (28 or 32)) throw new AdpException($"score model: image size must be 28 or 32, got {ImageSize}");
        if (Ngf < 1) throw new AdpException($"--ngf: expected a positive integer, got {Ngf}");
        if (!(SigmaMax > SigmaMin && SigmaMin > 0)) throw new AdpException($"σ schedule: expected σ_1 > σ_L > 0, got {SigmaMax} and {SigmaMin}");
        if (NumLevels < 1) throw new AdpException($"σ schedule: expected at least one level, got {NumLevels}");
    }
}
