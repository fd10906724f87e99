using System.Diagnostics;
using System.Runtime.InteropServices;
using Adp.Training;
using Spectre.Console;

namespace Adp.Cli;

/// <summary>Progress for long jobs: a live bar in a terminal, a line every few seconds when redirected
/// (nohup logs). Ctrl-C and SIGTERM cancel the token so the job can write a checkpoint and exit.</summary>
public static class ProgressReporter
{
    public static T Run<T>(string title, long total, Func<Action<TrainingProgress>, CancellationToken, T> job)
    {
        using var cts = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cts.Cancel(); };
        Console.CancelKeyPress += onCancel;
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; cts.Cancel(); });
        try
        {
            if (!CliSupport.Interactive) return RunPlain(title, job, cts.Token);
            T result = default!;
            AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask(Markup.Escape(title), maxValue: total);
                    result = job(p =>
                    {
                        task.Value = p.Iteration;
                        task.Description = Markup.Escape($"{title} loss {p.Loss:F4} {p.ImagesPerSecond:F0} img/s{(p.Note is null ? "" : " " + p.Note)}");
                    }, cts.Token);
                });
            if (cts.IsCancellationRequested) AnsiConsole.MarkupLine("[yellow]interrupted: checkpoint written[/]");
            return result;
        }
        finally { Console.CancelKeyPress -= onCancel; }
    }

    private static T RunPlain<T>(string title, Func<Action<TrainingProgress>, CancellationToken, T> job, CancellationToken token)
    {
        var clock = Stopwatch.StartNew();
        double lastPrint = -1e9;
        var result = job(p =>
        {
            if (clock.Elapsed.TotalSeconds - lastPrint < 10 && p.Iteration != p.TotalIterations) return;
            lastPrint = clock.Elapsed.TotalSeconds;
            var eta = p.Iteration > 0 ? TimeSpan.FromSeconds(clock.Elapsed.TotalSeconds / p.Iteration * (p.TotalIterations - p.Iteration)) : TimeSpan.Zero;
            Console.WriteLine($"{DateTime.UtcNow:HH:mm:ss} {title} {p.Iteration}/{p.TotalIterations} loss {p.Loss:F4} {p.ImagesPerSecond:F1} img/s " +
                              $"elapsed {clock.Elapsed:hh\\:mm\\:ss} eta {eta:hh\\:mm\\:ss}{(p.Note is null ? "" : " " + p.Note)}");
        }, token);
        if (token.IsCancellationRequested) Console.WriteLine("interrupted: checkpoint written");
        return result;
    }
}
