namespace Adp.Purification;

/// <summary>
/// Hyper-parameters of one ADP purification run (METHOD.md §2; defaults are the paper's): noise σ, steps T,
/// λ, probe δ, step clamp [α_min, α_max], stop threshold τ. <see cref="Faithful"/> reproduces the research
/// code's range-map quirk (map x·255/256 + 1/512 once before the loop, inverse map after every step).
/// </summary>
public sealed record PurifierSettings(
    double Sigma = 0.25,
    int Steps = 10,
    double Lambda = 0.05,
    double Delta = 1e-3,
    double AlphaMin = 1e-5,
    double AlphaMax = 0.1,
    double Tau = 1e-3,
    bool Faithful = false)
{
    public void Validate()
    {
        if (!(Sigma >= 0) || double.IsInfinity(Sigma)) throw new AdpException($"--sigma: expected ≥ 0, got {Sigma}");
        if (Steps < 0) throw new AdpException($"--steps: expected ≥ 0, got {Steps}");
        if (!(Lambda > 0) || double.IsInfinity(Lambda)) throw new AdpException($"--lambda: expected > 0, got {Lambda}");
        if (!(Delta > 0) || double.IsInfinity(Delta)) throw new AdpException($"--delta: expected > 0, got {Delta}");
        if (!(AlphaMin > 0 && AlphaMax >= AlphaMin) || double.IsInfinity(AlphaMax)) throw new AdpException($"step clamp: expected 0 < α_min ≤ α_max, got [{AlphaMin}, {AlphaMax}]");
        if (!(Tau >= 0) || double.IsInfinity(Tau)) throw new AdpException($"--tau: expected ≥ 0, got {Tau}");
    }

    public string Describe() => $"σ={Sigma} {DescribeSteps()}";

    /// <summary>The step rule's settings (all but σ), for purifiers that bring their own σ (re-injection's stages).</summary>
    public string DescribeSteps() => $"T={Steps} λ={Lambda} δ={Delta} α∈[{AlphaMin},{AlphaMax}] τ={Tau}{(Faithful ? " faithful" : "")}";
}
