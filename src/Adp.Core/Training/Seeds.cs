namespace Adp.Training;

/// <summary>Deterministic seed derivation (SplitMix64). Unlike HashCode.Combine, stable across processes.</summary>
public static class Seeds
{
    public static ulong Mix(params long[] parts)
    {
        ulong h = 0x9E3779B97F4A7C15;
        foreach (var p in parts)
        {
            h ^= (ulong)p;
            h += 0x9E3779B97F4A7C15;
            ulong z = h;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
            h = z ^ (z >> 31);
        }
        return h;
    }

    /// <summary>A non-negative int seed for System.Random.</summary>
    public static int MixInt(params long[] parts) => (int)(Mix(parts) & 0x7fffffff);

    /// <summary>A seed for a torch generator (kept below 2^63).</summary>
    public static ulong MixTorch(params long[] parts) => Mix(parts) & 0x7fffffffffffffff;
}
