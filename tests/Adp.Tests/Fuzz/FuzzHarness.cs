using System.Collections.Concurrent;
using CsCheck;

namespace Adp.Tests.Fuzz;

/// <summary>
/// Runs a parser on generated inputs (CsCheck) and enforces the toolkit's contract for bad input: every input ends in
/// success or in an <see cref="AdpException"/> (the CLI's one-line error, exit code 2). Anything else fails the run:
/// another exception type, an input that takes longer than <see cref="TimeoutSeconds"/>, or one that allocates more
/// managed memory than the parser's bound (a header claiming terabytes must be refused before allocating).
/// <para>Settings (environment): ADP_FUZZ_ITERATIONS (inputs per parser, default 1000), ADP_FUZZ_SECONDS (run each
/// parser for this long instead; the long-run script sets it), ADP_FUZZ_SEED (a CsCheck seed, to replay a failure),
/// ADP_FUZZ_TIMEOUT (seconds per input, default 20), ADP_FUZZ_FAILURES (folder where failing inputs are written;
/// default a temp folder). A failure names the parser, the exception and the file holding the input.</para>
/// </summary>
public static class FuzzHarness
{
    public static long Iterations => long.TryParse(Environment.GetEnvironmentVariable("ADP_FUZZ_ITERATIONS"), out var n) && n > 0 ? n : 1000;
    public static int Seconds => int.TryParse(Environment.GetEnvironmentVariable("ADP_FUZZ_SECONDS"), out var s) && s > 0 ? s : -1;
    public static double TimeoutSeconds => double.TryParse(Environment.GetEnvironmentVariable("ADP_FUZZ_TIMEOUT"), out var t) && t > 0 ? t : 20;
    private static string? Seed => Environment.GetEnvironmentVariable("ADP_FUZZ_SEED") is { Length: > 0 } s ? s : null;

    /// <summary>How many inputs each parser was given in this process (for the summary line).</summary>
    public static readonly ConcurrentDictionary<string, long> Counts = new();

    /// <summary>What one input did: "ok", or the first line of the AdpException.</summary>
    public sealed record Outcome(bool Refused, List<string> Messages);

    /// <summary>
    /// Samples <paramref name="gen"/> and runs <paramref name="target"/> on each input under the contract above.
    /// <paramref name="maxAllocatedBytes"/> bounds the managed bytes one input may allocate (on the thread that runs it).
    /// </summary>
    public static void Run(string parser, Gen<byte[]> gen, Action<byte[]> target, long maxAllocatedBytes,
        Action<string>? log = null)
    {
        long tried = 0, refused = 0;
        var reasons = new ConcurrentDictionary<string, int>();
        var sw = System.Diagnostics.Stopwatch.StartNew();
        gen.Sample(input =>
        {
            Interlocked.Increment(ref tried);
            var o = Guard(parser, input, target, maxAllocatedBytes);
            if (o.Refused) Interlocked.Increment(ref refused);
            foreach (var m in o.Messages) reasons.AddOrUpdate(Category(m), 1, (_, c) => c + 1);
        }, seed: Seed, iter: Seconds > 0 ? -1 : Iterations, time: Seconds, threads: 1, print: Describe);
        Counts.AddOrUpdate(parser, tried, (_, c) => c + tried);
        log?.Invoke($"fuzz {parser}: {tried} inputs ({refused} refused by at least one step with AdpException, {tried - refused} accepted by every step) in {sw.Elapsed.TotalSeconds:F1} s");
        if (Environment.GetEnvironmentVariable("ADP_FUZZ_VERBOSE") == "1")
            foreach (var (reason, n) in reasons.OrderByDescending(kv => kv.Value).Take(25)) log?.Invoke($"  {n,6}  {reason}");
    }

    /// <summary>A refusal's kind: its message without the file name and numbers.</summary>
    private static string Category(string message)
    {
        var m = System.Text.RegularExpressions.Regex.Replace(message, @"/tmp/\S*?(: |!)", "");
        m = System.Text.RegularExpressions.Regex.Replace(m, @"\d+", "N");
        return m.Length > 110 ? m[..110] : m;
    }

    /// <summary>Runs one input on its own thread, bounded in time; returns what it did or throws
    /// <see cref="FuzzFailure"/>.</summary>
    public static Outcome Guard(string parser, byte[] input, Action<byte[]> target, long maxAllocatedBytes)
    {
        Exception? error = null;
        long allocated = 0;
        List<string> stepMessages = [];
        var thread = new Thread(() =>
        {
            _stepMessages = [];
            long before = GC.GetAllocatedBytesForCurrentThread();
            try { target(input); }
            catch (Exception e) { error = e; }
            allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            stepMessages = _stepMessages;
        }, maxStackSize: 16 << 20) { IsBackground = true, Name = "fuzz " + parser };
        thread.Start();
        if (!thread.Join(TimeSpan.FromSeconds(TimeoutSeconds)))
            throw Failure(parser, input, $"no answer after {TimeoutSeconds} s (hang?)");
        if (error is not null && error is not AdpException)
            throw Failure(parser, input, $"{error.GetType().FullName}: {FirstLine(error.Message)}\n{error.StackTrace}");
        if (error is AdpException a && (a.Message.Contains('\n') || a.Message.Length == 0))
            throw Failure(parser, input, $"AdpException message is not one line: {a.Message}");
        if (allocated > maxAllocatedBytes)
            throw Failure(parser, input, $"allocated {allocated:N0} bytes for a {input.Length:N0}-byte input (bound {maxAllocatedBytes:N0})");
        if (error is AdpException ae) stepMessages.Add(ae.Message);
        return new Outcome(stepMessages.Count > 0, stepMessages);
    }

    [ThreadStatic] private static List<string>? _stepMessages;

    /// <summary>Runs one step of a target whose <see cref="AdpException"/> is an expected outcome, so that the target's
    /// next steps run too (the input counts as refused); any other exception propagates.</summary>
    public static void Try(Action step)
    {
        try { step(); }
        catch (AdpException e)
        {
            _stepMessages?.Add(e.Message);
            if (e.Message.Contains('\n') || e.Message.Length == 0) throw new FuzzFailure($"AdpException message is not one line: {e.Message}");
        }
    }

    public sealed class FuzzFailure(string message) : Exception(message);

    private static FuzzFailure Failure(string parser, byte[] input, string what)
    {
        var dir = Environment.GetEnvironmentVariable("ADP_FUZZ_FAILURES") is { Length: > 0 } d ? d
            : Path.Combine(Path.GetTempPath(), "adp-fuzz-failures");
        Directory.CreateDirectory(dir);
        var file = Path.Combine(dir, $"{parser}-{Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(input))[..16]}.bin");
        File.WriteAllBytes(file, input);
        return new FuzzFailure($"fuzz {parser}: {what}\ninput ({input.Length} bytes) saved to {file}");
    }

    private static string FirstLine(string s) => s.Split('\n')[0];

    /// <summary>Short description of an input for CsCheck's failure report (the full input is saved to a file).</summary>
    public static string Describe(byte[] input) =>
        $"{input.Length} bytes: {Convert.ToHexString(input.AsSpan(0, Math.Min(input.Length, 64)))}{(input.Length > 64 ? "…" : "")}";

    /// <summary>The committed seed files of a parser: tests/fuzz-corpus/&lt;parser&gt;/ (every file, sorted by name).</summary>
    public static byte[][] Corpus(string parser)
    {
        var dir = CorpusDir(parser);
        Assert.True(Directory.Exists(dir), $"seed corpus {dir} is missing");
        var files = Directory.GetFiles(dir).Where(f => !f.EndsWith(".md")).Order(StringComparer.Ordinal).ToArray();
        Assert.NotEmpty(files);
        return files.Select(File.ReadAllBytes).ToArray();
    }

    public static string CorpusDir(string parser) => Path.Combine(TestEnvironment.RepoRoot, "tests", "fuzz-corpus", parser);

    /// <summary>A fresh temp folder for one test's files.</summary>
    public static string TempDir(string name) => Directory.CreateTempSubdirectory($"adp-fuzz-{name}-").FullName;
}
