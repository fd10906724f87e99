using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Adp.Attacks;
using Adp.Purification;

namespace Adp.Evaluation;

/// <summary>What is attacked and what is evaluated.</summary>
public enum AttackTarget
{
    /// <summary>Attack and evaluate the bare classifier.</summary>
    Bare,
    /// <summary>Preprocessor-blind: attack the bare classifier, evaluate the defense.</summary>
    Blind,
    /// <summary>BPDA+EOT as the paper's research code did it, evaluate the defense.</summary>
    Bpda,
    /// <summary>BPDA+EOT with a per-pixel vote of the n_EOT gradient signs (this toolkit's earlier "paper" rule).</summary>
    BpdaSignVote,
    /// <summary>BPDA+EOT with the mean gradient (standard EOT).</summary>
    BpdaMean,
    /// <summary>Score-aware BPDA as in the research code (bpda_total.py): half a step along the BPDA update and half along
    /// the purification displacement.</summary>
    BpdaScore,
    /// <summary>Full gradient through the differentiable purifier, EOT.</summary>
    Full,
}

public enum AttackKind { None, Fgsm, Pgd, Apgd }

/// <summary>One attack of an evaluation, as plain settings.</summary>
public sealed record AttackSpec
{
    public string Name { get; init; } = "";
    public AttackKind Kind { get; init; } = AttackKind.Pgd;
    public AttackTarget Target { get; init; } = AttackTarget.Blind;
    public Norm Norm { get; init; } = Norm.Linf;
    public double Epsilon { get; init; } = 0.3;
    /// <summary>Step size; 0 means ε/4.</summary>
    public double Step { get; init; } = 0;
    public int Iterations { get; init; } = 40;
    public int Restarts { get; init; } = 1;
    public bool RandomStart { get; init; } = true;
    public AttackLoss Loss { get; init; } = AttackLoss.CrossEntropy;
    public int Eot { get; init; } = 1;
    public bool ReturnBest { get; init; } = false;
    /// <summary>Attack iterations at which the evaluated model (the defense: mean softmax, one submission; or the
    /// bare classifier) is also evaluated on the intermediate iterate: robust accuracy vs attack budget from a single run. PGD (final
    /// iterate) or APGD (best point so far), one restart only.</summary>
    public List<int> IterationsCurve { get; init; } = [];
    /// <summary>AutoAttack's convention: first classify the clean images (the defense with S runs and one submission, or the
    /// bare classifier) and attack only those classified correctly under at least one decision rule; the others count as
    /// not robust under every rule (their adversarial example is the clean image), so robust accuracy never exceeds that
    /// natural pass. Attacked images get exactly the random draws they get without this setting, so the only change is
    /// the skipped images' outcome (conservative: an attack can only lower accuracy) and the attack's cost saved on them.</summary>
    public bool SkipMisclassified { get; init; } = false;
    /// <summary>AutoAttack's cascade (its version for randomized defenses runs APGD-CE, then APGD-DLR on the images still
    /// robust): the label of an earlier attack of the same configuration. Only the images that attack left correctly
    /// classified (same seed, under at least one decision rule in every resubmission) are attacked; the others count as
    /// not robust and keep its adversarial example. Every outcome is the worst case of both attacks (an image is correct
    /// under a rule and resubmission only if both left it correct there), so the row is the robust accuracy under the
    /// stronger of the two, per image. Attacked images get the random draws of the same attack without a cascade. Null
    /// (the default): no cascade. Omitted from written configurations when null.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? After { get; init; }
    /// <summary>The attack <see cref="After"/> names, as <see cref="RobustConfig.AllAttacks"/> resolves it (null before);
    /// its settings are part of this attack's <see cref="Canonical"/> form, its name is not.</summary>
    [JsonIgnore]
    public AttackSpec? AfterSpec { get; init; }

    public void Validate()
    {
        if (Name is null) throw new AdpException("attack: Name must be a string, got null");
        if (!Enum.IsDefined(Kind)) throw new AdpException($"attack '{Label}': unknown kind {Kind} (expected None, Fgsm, Pgd or Apgd)");
        if (!Enum.IsDefined(Target))
            throw new AdpException($"attack '{Label}': unknown target {Target} (expected {string.Join(", ", Enum.GetNames<AttackTarget>())})");
        if (!Enum.IsDefined(Norm)) throw new AdpException($"attack '{Label}': unknown norm {Norm} (expected Linf or L2)");
        if (!Enum.IsDefined(Loss)) throw new AdpException($"attack '{Label}': unknown loss {Loss} (expected CrossEntropy, Margin or Dlr)");
        if (!double.IsFinite(Epsilon)) throw new AdpException($"attack '{Label}': eps must be a finite number, got {Epsilon}");
        if (!double.IsFinite(Step) || Step < 0) throw new AdpException($"attack '{Label}': step must be a finite number ≥ 0 (0 = ε/4), got {Step}");
        if (IterationsCurve is null) throw new AdpException($"attack '{Label}': IterationsCurve must be a list, got null");
        if (Epsilon < 0) throw new AdpException($"attack '{Label}': eps must be ≥ 0, got {Epsilon}");
        if (Iterations < 0) throw new AdpException($"attack '{Label}': iters must be ≥ 0, got {Iterations}");
        if (Restarts < 1) throw new AdpException($"attack '{Label}': restarts must be ≥ 1, got {Restarts}");
        if (Eot < 1) throw new AdpException($"attack '{Label}': eot must be ≥ 1, got {Eot}");
        if (Norm == Norm.L2 && Target is AttackTarget.Bpda or AttackTarget.BpdaScore)
            throw new AdpException($"attack '{Label}': the research code's BPDA rules (bpda, bpda-score) are ℓ∞ only; use bpda-mean or full for ℓ2");
        if (SkipMisclassified && Kind == AttackKind.None)
            throw new AdpException($"attack '{Label}': SkipMisclassified needs an attack (kind none attacks nothing)");
        if (After is not null)
        {
            if (Kind == AttackKind.None) throw new AdpException($"attack '{Label}': After needs an attack (kind none attacks nothing)");
            if (AfterSpec is null)
                throw new AdpException($"attack '{Label}': After names '{After}', which is not an earlier attack of this configuration");
            if (AfterSpec.Kind == AttackKind.None)
                throw new AdpException($"attack '{Label}': After names '{After}', which attacks nothing (kind none)");
            // The earlier attack's breaks count for this row: they must lie in this row's threat model.
            if (AfterSpec.Norm != Norm || AfterSpec.Epsilon > Epsilon)
                throw new AdpException($"attack '{Label}': After names '{After}', whose threat model ({AfterSpec.Norm} ε = {AfterSpec.Epsilon:G4}) " +
                                       $"is not within this attack's ({Norm} ε = {Epsilon:G4})");
            if (AfterSpec.EvaluatesDefense != EvaluatesDefense)
                throw new AdpException($"attack '{Label}': After names '{After}', which evaluates the " +
                                       $"{(AfterSpec.EvaluatesDefense ? "defense" : "bare classifier")}; a cascade needs both attacks to evaluate the same model");
        }
        if (IterationsCurve.Count == 0) return;
        if (Kind is not (AttackKind.Pgd or AttackKind.Apgd) || Restarts != 1 || ReturnBest)
            throw new AdpException($"attack '{Label}': IterationsCurve needs Kind Pgd (final iterate) or Apgd (best point so far), one restart");
        if (IterationsCurve.Any(k => k < 0 || k > Iterations))
            throw new AdpException($"attack '{Label}': IterationsCurve entries must lie in 0…{Iterations}");
    }

    public string Label => Name.Length > 0 ? Name
        : Kind == AttackKind.None ? (EvaluatesDefense ? "natural (defended)" : "clean (bare)")
        : $"{Target}-{Kind}-eps{Epsilon:G3}";
    public bool EvaluatesDefense => Target != AttackTarget.Bare;

    public string Protocol() => Kind == AttackKind.None
        ? $"no attack ({(EvaluatesDefense ? "defended" : "bare")})"
        : $"{Kind} {Target} {(Norm == Norm.Linf ? "ℓ∞" : "ℓ2")} ε={Epsilon:G4} step={EffectiveStep:G4} iters={Iterations} restarts={Restarts} " +
          $"{(RandomStart ? "random start" : "no random start")} loss={Loss}" +
          (IsRandomizedTarget ? $" EOT={Eot}" : "") +
          (ReturnBest ? " best-iterate" : "") +
          (SkipMisclassified ? " on clean-correct images only" : "") +
          // By the earlier attack's settings, not its name (ε curves group rows by protocol); ε is this row's.
          (After is null ? "" : AfterSpec is { } e
              ? $" after {e.Kind} {e.Target} with loss {e.Loss}{(e.IsRandomizedTarget ? $" EOT {e.Eot}" : "")} {e.Iterations} iterations" +
                " (cascade: on the images it left robust; worst case of both)"
              : $" after '{After}' (cascade)");

    public double EffectiveStep => Step > 0 ? Step : Epsilon / 4;

    /// <summary>True when the attack's gradient passes through the randomized purifier (BPDA or full gradient), so
    /// EOT over its noise matters.</summary>
    [JsonIgnore]
    public bool IsRandomizedTarget => Target is AttackTarget.Bpda or AttackTarget.BpdaSignVote or AttackTarget.BpdaMean
        or AttackTarget.BpdaScore or AttackTarget.Full;

    /// <summary>Everything about the attack that decides its outcome (not its display name), as one string.</summary>
    public string Canonical() => string.Join("|", Kind, Target, Norm, Epsilon.ToString("R", CultureInfo.InvariantCulture),
        EffectiveStep.ToString("R", CultureInfo.InvariantCulture), Iterations, Restarts, RandomStart, Loss, Eot, ReturnBest,
        string.Join(",", IterationsCurve)) + (SkipMisclassified ? "|skip-misclassified" : "") +
        (AfterSpec is null ? "" : $"|after({AfterSpec.Canonical()})");

    /// <summary>A stable 63-bit id of <see cref="Canonical"/>: it keys the attack's results, so renaming or reordering
    /// attacks changes neither.</summary>
    public long Id()
    {
        ulong h = 14695981039346656037;  // FNV-1a over UTF-8, then mixed
        foreach (var b in System.Text.Encoding.UTF8.GetBytes(Canonical())) { h ^= b; h *= 1099511628211; }
        return (long)(Adp.Training.Seeds.Mix((long)h) & 0x7fffffffffffffff);
    }

    /// <summary>Keys the attack's random streams: <see cref="Id"/> without <see cref="SkipMisclassified"/> and
    /// <see cref="After"/>, so an attacked image draws the same noise whether or not the others are skipped.</summary>
    public long StreamId() => (this with { SkipMisclassified = false, After = null, AfterSpec = null }).Id();
}

/// <summary>A robustness evaluation: data, models, purifier, attacks, decision rules, seeds, resubmissions.</summary>
public sealed record RobustConfig
{
    public string Dataset { get; init; } = "fashion-mnist";
    /// <summary>"test", or "validation" (the last <see cref="ValidationImages"/> training images) for tuning.</summary>
    public string Split { get; init; } = "test";
    /// <summary>With <see cref="Split"/> "validation": how many of the last training images (null: 5,000). Omitted from the
    /// written configuration when null, so folders written before this setting existed resume unchanged.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? ValidationImages { get; init; }
    /// <summary>The validation split's size in effect.</summary>
    [JsonIgnore]
    public int ValidationCount => ValidationImages ?? Adp.Data.DatasetLoader.DefaultValidationImages;
    public int Images { get; init; } = 64;
    public required string Classifier { get; init; }
    public required string Score { get; init; }
    public PurifierSettings Purifier { get; init; } = new();
    /// <summary>The purifier the defense runs with <see cref="Purifier"/>'s settings: null (the default) or kind Adp for ADP
    /// itself, else a variant of METHOD.md §3 (e.g. re-injection); BPDA attacks it as it is, full-gradient attacks through
    /// its differentiable form (<see cref="PurifierVariant.CreateDifferentiable"/>). Omitted from the written configuration
    /// when null, so folders written before this setting existed resume unchanged.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public PurifierVariant? Variant { get; init; }
    /// <summary>The variant in effect (<see cref="PurifierVariant.Adp"/> when <see cref="Variant"/> is null).</summary>
    [JsonIgnore]
    public PurifierVariant EffectiveVariant => Variant ?? PurifierVariant.Adp;
    public int Runs { get; init; } = 10;
    public List<DecisionRule> Rules { get; init; } = [DecisionRule.MeanSoftmax, DecisionRule.LogitSum, DecisionRule.MajorityVote];
    public List<long> Seeds { get; init; } = [0];
    /// <summary>How often each adversarial input is resubmitted to the randomized defense (worst case reported).</summary>
    public int Resubmissions { get; init; } = 1;
    public int BatchSize { get; init; } = 32;
    public List<AttackSpec> Attacks { get; init; } = [];
    /// <summary>Purification step counts at which the defense is re-evaluated on the adversarial inputs of the first
    /// defended attack (the "accuracy vs purification steps" plot); empty for none.</summary>
    public List<int> StepsCurve { get; init; } = [];
    /// <summary>Adds an unbounded PGD on the bare classifier (sanity check: ≈ 0%).</summary>
    public bool SanityUnbounded { get; init; } = true;
    /// <summary>Evaluate only images whose index i (0 ≤ i &lt; <see cref="Images"/>) has i mod ShardCount = ShardIndex.</summary>
    public int ShardIndex { get; init; } = 0;
    public int ShardCount { get; init; } = 1;

    /// <summary>The defense's purifier over <paramref name="score"/>, with <paramref name="settings"/> (default: <see cref="Purifier"/>).</summary>
    public IPurifier CreatePurifier(TorchSharp.torch.nn.Module<TorchSharp.torch.Tensor, TorchSharp.torch.Tensor> score, PurifierSettings? settings = null) =>
        EffectiveVariant.Create(score, settings ?? Purifier);

    /// <summary>The defense's purifier in one line, for reports: "ADP " and the settings for ADP (the form reports had before
    /// variants could be evaluated), else the variant's key and the settings it reads.</summary>
    public string DescribePurifier()
    {
        var v = EffectiveVariant;
        return v.Kind switch
        {
            PurifierKind.Adp => "ADP " + Purifier.Describe(),
            PurifierKind.Reinject => $"{v.Key}; ADP {Purifier.DescribeSteps()} at each σ",
            PurifierKind.Tweedie or PurifierKind.Langevin => $"{v.Key} σ={Purifier.Sigma}",
            _ => $"{v.Key}; ADP {Purifier.Describe()}",
        };
    }

    /// <summary>The purifier's entry of an evaluation's fingerprint: every setting the purifier reads (ADP's settings as
    /// <see cref="PurifierSettings.Describe"/>, the form written before variants; a variant's key and its canonical settings).</summary>
    public string PurifierFingerprint() => EffectiveVariant.Kind == PurifierKind.Adp ? Purifier.Describe()
        : $"{EffectiveVariant.Key}; {EffectiveVariant.Canonical(Purifier).Describe()}";

    /// <summary>Data set indices this configuration evaluates, ascending.</summary>
    public List<int> ImageIndices() => Enumerable.Range(0, Images).Where(i => i % ShardCount == ShardIndex).ToList();

    [JsonIgnore]
    public string Shard => $"{ShardIndex}/{ShardCount}";

    /// <summary>Checks what can be checked without the models and data; throws <see cref="AdpException"/> naming the
    /// option.</summary>
    public void Validate()
    {
        // A JSON null where a value or list belongs (System.Text.Json sets it as written).
        foreach (var (name, value) in new (string, object?)[]
                 {
                     ("Dataset", Dataset), ("Split", Split), ("Classifier", Classifier), ("Score", Score), ("Purifier", Purifier),
                     ("Rules", Rules), ("Seeds", Seeds), ("Attacks", Attacks), ("StepsCurve", StepsCurve),
                 })
            if (value is null) throw new AdpException($"configuration: {name} must not be null");
        if (Attacks.Any(a => a is null)) throw new AdpException("configuration: Attacks must not hold null");
        foreach (var r in Rules.Where(r => !Enum.IsDefined(r)))
            throw new AdpException($"Rules: unknown decision rule {r} (expected {string.Join(", ", Enum.GetNames<DecisionRule>())})");
        if (Split is not ("test" or "validation")) throw new AdpException($"--split (\"Split\" in a config file): expected test or validation, got '{Split}'");
        if (ValidationImages is not null && Split != "validation")
            throw new AdpException($"--validation-images (\"ValidationImages\" in a config file): applies to --split validation only (the split is '{Split}')");
        if (ValidationImages is < 1) throw new AdpException($"--validation-images (\"ValidationImages\" in a config file): expected at least 1, got {ValidationImages}");
        if (Images < 1) throw new AdpException($"--images (\"Images\" in a config file): expected at least 1, got {Images}");
        if (Runs < 1) throw new AdpException($"--runs (\"Runs\" in a config file): expected at least 1, got {Runs}");
        if (Resubmissions < 1) throw new AdpException($"--resubmissions (\"Resubmissions\" in a config file): expected at least 1, got {Resubmissions}");
        if (BatchSize < 1) throw new AdpException($"--batch-size (\"BatchSize\" in a config file): expected at least 1, got {BatchSize}");
        if (Seeds.Count == 0) throw new AdpException("--seeds (\"Seeds\" in a config file): expected at least one seed");
        var repeated = Seeds.GroupBy(s => s).FirstOrDefault(g => g.Count() > 1);
        if (repeated is not null)
            throw new AdpException($"--seeds (\"Seeds\" in a config file): seed {repeated.Key} is given {repeated.Count()} times; repeated seeds repeat the same draws " +
                                   "and would be counted as independent");
        if (Rules.Count == 0 || Rules.Distinct().Count() != Rules.Count) throw new AdpException("Rules: expected distinct decision rules");
        if (ShardCount < 1 || ShardIndex < 0 || ShardIndex >= ShardCount)
            throw new AdpException($"--shard (\"ShardIndex\"/\"ShardCount\" in a config file): expected K/N with 0 ≤ K < N, got {ShardIndex}/{ShardCount}");
        if (ShardCount > Images) throw new AdpException($"--shard (\"ShardIndex\"/\"ShardCount\" in a config file): {ShardCount} shards for {Images} images leaves empty shards");
        if (StepsCurve.Any(t => t < 0)) throw new AdpException("--steps-curve (\"StepsCurve\" in a config file): expected non-negative step counts");
        Purifier.Validate();
        if (Variant is not null && !Enum.IsDefined(Variant.Kind))
            throw new AdpException($"Variant: unknown Kind {Variant.Kind} (expected {string.Join(", ", Enum.GetNames<PurifierKind>())})");
        try { Variant?.Validate(); }
        catch (AdpException e) { throw new AdpException($"\"Variant\" in a config file, or {e.Message}", e); }
        if (StepsCurve.Count > 0 && !EffectiveVariant.UsesSteps)
            throw new AdpException($"--steps-curve (\"StepsCurve\" in a config file): the {EffectiveVariant.Kind.ToString().ToLowerInvariant()} purifier takes no ADP steps");
        foreach (var a in AllAttacks()) a.Validate();
        if (!EffectiveVariant.HasDifferentiableForm && AllAttacks().FirstOrDefault(a => a.Target == AttackTarget.Full && a.Kind != AttackKind.None) is { } full)
            throw new AdpException($"attack '{full.Label}': target full needs a differentiable purifier; the " +
                                   $"{EffectiveVariant.Kind.ToString().ToLowerInvariant()} purifier has none (adp, reinject and tweedie have one); attack it with BPDA");
        var dup = AllAttacks().GroupBy(a => a.Id()).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new AdpException($"attacks '{dup.First().Label}' and '{dup.Skip(1).First().Label}' are the same attack");
    }

    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter() },
        PropertyNameCaseInsensitive = true,
    };

    public static RobustConfig Load(string path)
    {
        if (!File.Exists(path)) throw new AdpException($"--config {path}: file not found");
        try
        {
            return JsonSerializer.Deserialize<RobustConfig>(File.ReadAllBytes(path), Json)
                   ?? throw new AdpException($"--config {path}: empty configuration");
        }
        catch (JsonException e)
        {
            // The reader's message quotes the input; say where instead (JSON path, line and byte of the line).
            string where = e.Path is { Length: > 0 } p ? $" at {p}" : "";
            string line = e.LineNumber is { } l ? $", line {l + 1}{(e.BytePositionInLine is { } b ? $" byte {b + 1}" : "")}" : "";
            string what = e.Message.Split(". Path:")[0].Split(" Path:")[0].Split(" LineNumber:")[0];
            throw new AdpException($"--config {path}: not a valid evaluation configuration{where}{line} ({what.TrimEnd('.')})");
        }
        catch (IOException e) { throw new AdpException($"--config {path}: cannot read ({e.Message})", e); }
        catch (UnauthorizedAccessException e) { throw new AdpException($"--config {path}: cannot read ({e.Message})", e); }
    }

    /// <summary>The configured attacks with <see cref="AttackSpec.After"/> resolved (to the nearest earlier attack of that
    /// label), then the sanity attack if configured.</summary>
    public List<AttackSpec> AllAttacks()
    {
        var list = new List<AttackSpec>();
        foreach (var a in Attacks)
            list.Add(a?.After is { } name ? a with { AfterSpec = list.LastOrDefault(p => p.Label == name) } : a!);
        if (SanityUnbounded && !list.Any(a => a.Target == AttackTarget.Bare && a.Epsilon >= 1))
            list.Add(new AttackSpec { Name = "sanity: unbounded PGD on bare", Kind = AttackKind.Pgd, Target = AttackTarget.Bare, Epsilon = 1.0, Step = 0.1, Iterations = 20, Loss = AttackLoss.Margin });
        return list;
    }
}
