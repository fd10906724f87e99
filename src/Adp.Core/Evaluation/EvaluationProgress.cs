using System.Text.Json;
using Adp.IO;

namespace Adp.Evaluation;

/// <summary>Per-image outcomes of one (attack, seed) cell. Every list is aligned with <see cref="Indices"/>.</summary>
public sealed class CellState
{
    public string Attack { get; set; } = "";
    public string Protocol { get; set; } = "";
    public long Seed { get; set; }
    /// <summary>Data set indices of the images evaluated so far, in evaluation order.</summary>
    public List<int> Indices { get; set; } = [];
    /// <summary>rule name → resubmission → per-image correctness (1/0).</summary>
    public Dictionary<string, List<List<int>>> Correct { get; set; } = new();
    /// <summary>Defended cells: per image, how many of its S·R purification runs (S runs × R resubmissions) were
    /// classified correctly on their own; the per-run worst case counts an image robust only when all were.</summary>
    public List<int> RunsCorrect { get; set; } = [];
    /// <summary>steps T → per-image correctness under mean softmax (only for the steps-curve attack).</summary>
    public Dictionary<int, List<int>> StepsCurve { get; set; } = new();
    /// <summary>attack iterations k → per-image correctness under mean softmax on the k-step iterate.</summary>
    public Dictionary<int, List<int>> IterationsCurve { get; set; } = new();
    /// <summary>Data set indices of the images not attacked because they were misclassified on clean input
    /// (<see cref="AttackSpec.SkipMisclassified"/>); every outcome of theirs is 0.</summary>
    public List<int> Skipped { get; set; } = [];
    /// <summary>A cascade (<see cref="AttackSpec.After"/>): data set indices not attacked because the earlier attack had
    /// broken them (under every rule, in some resubmission); their outcomes are that attack's.</summary>
    public List<int> BrokenEarlier { get; set; } = [];
    public double Seconds { get; set; }

    /// <summary>Position of each evaluated image in the lists.</summary>
    public Dictionary<int, int> Positions() => Indices.Select((idx, pos) => (idx, pos)).ToDictionary(p => p.idx, p => p.pos);
}

/// <summary>What a report folder holds: the fingerprint of everything that decides a result, and the cells.</summary>
public sealed class EvaluationProgress
{
    public const int CurrentFormat = 2;
    public int Format { get; set; } = CurrentFormat;
    /// <summary>field → value; a resume or merge refuses a folder whose fingerprint differs.</summary>
    public Dictionary<string, string> Fingerprint { get; set; } = new();
    /// <summary>"attack id|seed" → cell.</summary>
    public Dictionary<string, CellState> Cells { get; set; } = new();

    public static string CellKey(AttackSpec attack, long seed) => $"{attack.Id():x16}|{seed}";

    public static string PathIn(string dir) => Path.Combine(dir, "progress.json");

    /// <summary>True when every attack × seed cell of <paramref name="config"/> holds every one of its images (its shard's):
    /// the evaluation is finished.</summary>
    public bool Covers(RobustConfig config)
    {
        var images = config.ImageIndices();
        return config.AllAttacks().All(spec => config.Seeds.All(seed =>
            Cells.TryGetValue(CellKey(spec, seed), out var c) && c.Indices.ToHashSet() is var held && images.All(held.Contains)));
    }

    /// <summary>Reads DIR/progress.json, or null when the folder has none. Progress files of the first format (cells
    /// keyed by attack position, images in order) are converted using DIR/config.json.</summary>
    public static EvaluationProgress? Load(string dir)
    {
        var path = PathIn(dir);
        if (!File.Exists(path)) return null;
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(path)); }
        catch (JsonException) { throw new AdpException($"{path}: not a valid progress file (unreadable JSON)"); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new AdpException($"{path}: not a valid progress file");
            if (doc.RootElement.TryGetProperty("Format", out _))
                return doc.RootElement.Deserialize<EvaluationProgress>() ?? throw new AdpException($"{path}: empty progress file");
            return FromLegacy(dir, doc.RootElement.Deserialize<Dictionary<string, LegacyCell>>()
                                   ?? throw new AdpException($"{path}: empty progress file"));
        }
    }

    private sealed class LegacyCell
    {
        public int BatchesDone { get; set; }
        public Dictionary<string, List<List<int>>> Correct { get; set; } = new();
        public Dictionary<int, List<int>> StepsCurve { get; set; } = new();
        public Dictionary<int, List<int>> IterationsCurve { get; set; } = new();
        public double Seconds { get; set; }
    }

    private static EvaluationProgress FromLegacy(string dir, Dictionary<string, LegacyCell> legacy)
    {
        var config = RobustConfig.Load(Path.Combine(dir, "config.json"));
        var attacks = config.AllAttacks();
        var progress = new EvaluationProgress { Fingerprint = RobustEvaluation.ConfigFingerprint(config, "?", "?", "?") };
        progress.Fingerprint["converted from"] = "progress format 1 (images 0…N−1 in order)";
        foreach (var (key, c) in legacy)
        {
            var parts = key.Split('|');
            if (parts.Length != 2 || !int.TryParse(parts[0], out int a) || a < 0 || a >= attacks.Count || !long.TryParse(parts[1], out long seed))
                throw new AdpException($"{PathIn(dir)}: cell '{key}' does not match {Path.Combine(dir, "config.json")}");
            int n = c.Correct.Values.FirstOrDefault()?.FirstOrDefault()?.Count ?? 0;
            progress.Cells[CellKey(attacks[a], seed)] = new CellState
            {
                Attack = attacks[a].Label, Protocol = attacks[a].Protocol(), Seed = seed, Indices = Enumerable.Range(0, n).ToList(),
                Correct = c.Correct, StepsCurve = c.StepsCurve, IterationsCurve = c.IterationsCurve, Seconds = c.Seconds,
            };
        }
        return progress;
    }

    public void Save(string dir) => AtomicFile.Write(PathIn(dir), JsonSerializer.SerializeToUtf8Bytes(this));

    /// <summary>Throws an <see cref="AdpException"/> naming the first field where <paramref name="wanted"/> differs
    /// from this folder's fingerprint (fields in <paramref name="ignore"/> are not compared).</summary>
    public void RequireFingerprint(Dictionary<string, string> wanted, string dir, params string[] ignore) =>
        RequireFingerprint(wanted, dir, $"use another folder (or delete {PathIn(dir)} to start over)", ignore);

    /// <summary>As above, ending the message with <paramref name="advice"/>.</summary>
    public void RequireFingerprint(Dictionary<string, string> wanted, string dir, string advice, params string[] ignore)
    {
        foreach (var key in Fingerprint.Keys.Union(wanted.Keys).Except(ignore))
        {
            var have = Fingerprint.GetValueOrDefault(key, "(absent)");
            var want = wanted.GetValueOrDefault(key, "(absent)");
            if (have != want) throw new AdpException($"{dir}: holds results computed with {key} = {have}, not {want}; {advice}");
        }
    }

    /// <summary>Image-cells already stored for <paramref name="config"/>'s images, and how many it needs in all.</summary>
    public (long Done, long Total) Coverage(RobustConfig config)
    {
        var wanted = config.ImageIndices();
        long done = 0, total = 0;
        foreach (var spec in config.AllAttacks())
            foreach (var seed in config.Seeds)
            {
                total += wanted.Count;
                if (Cells.TryGetValue(CellKey(spec, seed), out var c))
                {
                    var have = c.Indices.ToHashSet();
                    done += wanted.Count(have.Contains);
                }
            }
        return (done, total);
    }
}
