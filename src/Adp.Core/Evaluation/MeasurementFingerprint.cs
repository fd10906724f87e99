namespace Adp.Evaluation;

/// <summary>The fields every stored validation measurement (snapshot curve, preset tuning) is identified by: a rerun into the
/// same folder must match them, or its numbers would not be comparable with the stored ones.</summary>
public interface IMeasurementFingerprint
{
    /// <summary>data set, split and image range.</summary>
    string Data { get; }
    /// <summary>SHA-256 of the classifier file.</summary>
    string ClassifierSha256 { get; }
    /// <summary>purification runs S per image.</summary>
    int Runs { get; }
    /// <summary>the transfer attack, as its settings describe it.</summary>
    string Attack { get; }
    /// <summary>seed of the attack and the purification noise.</summary>
    long Seed { get; }
}

internal static class MeasurementFingerprint
{
    /// <summary>What differs between a stored fingerprint and the current one, for a one-line error: the shared fields, with
    /// <paramref name="specific"/> (the measurement's own fields, already compared) after the classifier.</summary>
    public static string Differences(IMeasurementFingerprint? stored, IMeasurementFingerprint now, params string?[] specific)
    {
        if (stored is null) return "no fingerprint";
        var d = new List<string>();
        if (stored.Data != now.Data) d.Add($"data '{stored.Data}', not '{now.Data}'");
        if (stored.ClassifierSha256 != now.ClassifierSha256) d.Add("another classifier file");
        d.AddRange(specific.OfType<string>());
        if (stored.Runs != now.Runs) d.Add($"S={stored.Runs}, not {now.Runs}");
        if (stored.Attack != now.Attack) d.Add($"attack {stored.Attack}, not {now.Attack}");
        if (stored.Seed != now.Seed) d.Add($"seed {stored.Seed}, not {now.Seed}");
        return string.Join("; ", d);
    }
}
