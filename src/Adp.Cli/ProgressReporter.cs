using System.Diagnostics;
using System.Runtime.InteropServices;
using Adp.Training;
using Spectre.Console;

namespace Adp.Cli;

/// <summary>Progress for long jobs: a live bar in a terminal, a line every few seconds when redirected
/// (nohup logs). Ctrl-C and SIGTERM cancel the token so the job can write a checkpoint and exit.</summary>
public static class ProgressReporter
{
    /// <summary>Runs <paramref name="job"/> with progress output. <paramref name="status"/>, when given, describes what the
    /// job is doing right now (e.g. the attack iteration); redirected output then gets a line at least every
    /// <see cref="HeartbeatSeconds"/> even inside a long stage.</summary>
    public static T Run<T>(string title, long total, Func<Action<TrainingProgress>, CancellationToken, T> job, Func<string>? status = null)
    {
        using var cts = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cts.Cancel(); };
        Console.CancelKeyPress += onCancel;
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; cts.Cancel(); });
        try
        {
            if (!CliSupport.Interactive) return RunPlain(title, job, cts.Token, status);
            T result = default!;
            TrainingProgress? lastSeen = null;
            AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask(Markup.Escape(title), maxValue: total);
                    result = job(p =>
                    {
                        lastSeen = p;
                        task.Value = p.Iteration;
                        task.Description = Markup.Escape($"{title}{Fields(p)}");
                    }, cts.Token);
                });
            if (StoppedEarly(cts.IsCancellationRequested, lastSeen)) AnsiConsole.MarkupLine("[yellow]interrupted: progress written[/]");
            return result;
        }
        finally { Console.CancelKeyPress -= onCancel; }
    }

    /// <summary>Longest silence of redirected output while a job with a status runs.</summary>
    public const int HeartbeatSeconds = 30;

    /// <summary>The fields of a progress line that mean something for this job (no "loss NaN" for evaluations).</summary>
    private static string Fields(TrainingProgress p) =>
        (double.IsFinite(p.Loss) ? $" loss {p.Loss:F4}" : "") + (p.ImagesPerSecond > 0 ? $" {p.ImagesPerSecond:F1} img/s" : "") +
        (p.Note is null ? "" : " " + p.Note);

    /// <summary>hh:mm:ss with the hours uncapped ("32:08:00"): TimeSpan's "hh" drops whole days, so a 32-hour ETA read 08:08:00.</summary>
    public static string Duration(TimeSpan t) => $"{(long)t.TotalHours:00}:{t.Minutes:00}:{t.Seconds:00}";

    private static T RunPlain<T>(string title, Func<Action<TrainingProgress>, CancellationToken, T> job, CancellationToken token, Func<string>? status)
    {
        var clock = Stopwatch.StartNew();
        double lastPrint = -1e9;
        TrainingProgress? last = null;
        var gate = new object();
        // The rate is measured from the first report of this process: a resumed job starts at its checkpoint's iteration,
        // and dividing by all iterations would credit this process with the earlier ones (an ETA of minutes for hours of work).
        long? firstIteration = null;
        double firstSeconds = 0;
        string Eta(TrainingProgress p)
        {
            if (firstIteration is null || p.Iteration <= firstIteration) return "?";
            var secondsPerIteration = (clock.Elapsed.TotalSeconds - firstSeconds) / (p.Iteration - firstIteration.Value);
            return Duration(TimeSpan.FromSeconds(secondsPerIteration * (p.TotalIterations - p.Iteration)));
        }
        using var heartbeat = status is null ? null : new Timer(_ =>
        {
            lock (gate)
            {
                if (clock.Elapsed.TotalSeconds - lastPrint < HeartbeatSeconds - 1) return;
                lastPrint = clock.Elapsed.TotalSeconds;
                var done = last is null ? "" : $" {last.Iteration}/{last.TotalIterations}";
                Console.WriteLine($"{DateTime.UtcNow:HH:mm:ss} {title}{done} working: {status()} elapsed {Duration(clock.Elapsed)}" +
                                  (last is null ? "" : $" eta {Eta(last)}"));
            }
        }, null, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(5));
        var result = job(p =>
        {
            lock (gate)
            {
                last = p;
                if (firstIteration is null) { firstIteration = p.Iteration; firstSeconds = clock.Elapsed.TotalSeconds; }
                if (clock.Elapsed.TotalSeconds - lastPrint < 10 && p.Iteration != p.TotalIterations) return;
                lastPrint = clock.Elapsed.TotalSeconds;
                Console.WriteLine($"{DateTime.UtcNow:HH:mm:ss} {title} {p.Iteration}/{p.TotalIterations}{Fields(p)} " +
                                  $"elapsed {Duration(clock.Elapsed)} eta {Eta(p)}");
            }
        }, token);
        if (StoppedEarly(token.IsCancellationRequested, last)) Console.WriteLine("interrupted: progress written");
        return result;
    }

    /// <summary>Whether a cancelled job stopped before its end: a signal that arrives after the last iteration was reported
    /// does not make a finished job "interrupted".</summary>
    public static bool StoppedEarly(bool cancelled, TrainingProgress? last) =>
        cancelled && (last is null || last.Iteration < last.TotalIterations);
}
