defmodule Mix.Tasks.H2flow.Demo do
  @shortdoc "Runs the h2flow demo server (h2c and HTTP/1.1 on 8080, h2 and HTTP/1.1 over TLS on 8443)"

  @moduledoc """
  Runs the demo server (`H2Flow.Demo`): h2c and HTTP/1.1 on port 8080, h2 and HTTP/1.1 over
  TLS on port 8443 (ALPN), with a self-signed certificate for `localhost`. `curl
  http://localhost:8080/` and `curl -k https://localhost:8443/` answer.

      mix h2flow.demo [--port 8080] [--tls-port 8443] [--no-tls] [--host 0.0.0.0]
                      [--max-concurrent-streams 100] [--initial-connection-window N]
                      [--initial-stream-window N] [--no-adaptive-window]

  Open `https://localhost:8443/` in a browser (browsers speak HTTP/2 only over TLS; accept the
  certificate warning; `http://localhost:8080/` shows the page over HTTP/1.1) and press Run: the page fires 300 fetches at `/slow?ms=1000` and charts
  the requests in flight at the server against the limit it advertised, and the WINDOW_UPDATE
  frames it sent. `/?autorun=1&n=300&ms=1000&upload=64` runs both experiments on load. The
  other endpoints (`/slow`, `/echo`, `/stats`, `/report`, `/reset`) are described in
  `H2Flow.Demo`.

  Stopping: SIGTERM, or closing standard input (Ctrl-D in a terminal), stops the servers
  gracefully (GOAWAY, in-flight requests get up to 5 s). Ctrl-C opens the Erlang VM's break
  menu; a second Ctrl-C (or `a`) ends the VM at once and the OS closes the sockets. Standard
  input that is `/dev/null` (a service, `nohup`, a script's background job) is not watched.
  """

  use Mix.Task

  @switches [
    port: :integer,
    tls_port: :integer,
    tls: :boolean,
    host: :string,
    max_concurrent_streams: :integer,
    initial_connection_window: :integer,
    initial_stream_window: :integer,
    adaptive_window: :boolean
  ]

  @usage """
  usage: mix h2flow.demo [--port 8080] [--tls-port 8443] [--no-tls] [--host 0.0.0.0]
                         [--max-concurrent-streams 100] [--initial-connection-window N]
                         [--initial-stream-window N] [--no-adaptive-window]\
  """

  @impl Mix.Task
  def run(args) do
    opts = parse_args!(args)
    Mix.Task.run("app.start")
    # A server that fails to start (port in use) or dies later must not take this process
    # down with an exit signal before it can say why.
    Process.flag(:trap_exit, true)

    demo = start!(opts)

    Mix.shell().info(banner(demo))
    task = self()

    # The default SIGTERM action (System.stop/0) runs after this trap returns, so the servers
    # drain here, synchronously, first.
    _ =
      System.trap_signal(:sigterm, fn ->
        send(task, :stopping)
        H2Flow.Demo.stop(demo)
        :ok
      end)

    if watch_stdin?(), do: spawn_link(fn -> watch_stdin(task) end)
    wait(demo)
  end

  defp start!(opts) do
    case H2Flow.Demo.start(opts) do
      {:ok, demo} ->
        demo

      {:error, {:shutdown, {:failed_to_start_child, _, {:listen_failed, reason}}}} ->
        ports =
          if opts[:tls] == false,
            do: "#{opts[:port] || 8080}",
            else: "#{opts[:port] || 8080} or #{opts[:tls_port] || 8443}"

        Mix.raise("h2flow.demo could not listen on port #{ports}: #{:inet.format_error(reason)}")

      {:error, reason} ->
        Mix.raise("h2flow.demo could not start: #{inspect(reason)}")
    end
  rescue
    # Values out of range, e.g. --initial-connection-window 1000.
    e in ArgumentError -> Mix.raise("h2flow.demo: #{Exception.message(e)}\n" <> @usage)
  end

  @doc false
  # Parses and checks the command line; returns H2Flow.Demo.start/1 options.
  @spec parse_args!([String.t()]) :: keyword()
  def parse_args!(args) do
    case OptionParser.parse(args, strict: @switches) do
      {opts, [], []} ->
        {host, opts} = Keyword.pop(opts, :host, "0.0.0.0")

        case :inet.parse_address(String.to_charlist(host)) do
          {:ok, ip} -> [ip: ip] ++ opts
          {:error, _} -> Mix.raise("--host must be an IP address, got: #{host}\n" <> @usage)
        end

      {_opts, [arg | _], _} ->
        Mix.raise("unexpected argument #{arg}\n" <> @usage)

      {_opts, _, [{flag, nil} | _]} ->
        Mix.raise("unknown option #{flag}\n" <> @usage)

      {_opts, _, [{flag, value} | _]} ->
        Mix.raise("invalid value for #{flag}: #{value}\n" <> @usage)
    end
  end

  defp wait(demo) do
    receive do
      :stopping ->
        # SIGTERM: the trap stops the servers, then the VM; their exits are expected now.
        Mix.shell().info("SIGTERM: stopping.")
        Process.sleep(:infinity)

      :stdin_closed ->
        Mix.shell().info("Standard input closed: stopping.")
        H2Flow.Demo.stop(demo)

      {:EXIT, pid, reason} when pid in [demo.tcp, demo.tls] ->
        Mix.raise("h2flow.demo: a server stopped: #{inspect(reason)}")

      {:EXIT, _pid, _reason} ->
        wait(demo)
    end
  end

  # A background job or a service reads /dev/null: end of input there means nothing.
  defp watch_stdin? do
    File.read_link("/proc/self/fd/0") != {:ok, "/dev/null"}
  end

  defp watch_stdin(task) do
    case IO.read(:stdio, :line) do
      data when is_binary(data) -> watch_stdin(task)
      _eof_or_error -> send(task, :stdin_closed)
    end
  end

  defp banner(demo) do
    tcp = H2Flow.Demo.url(demo, :tcp, "")
    s = demo.settings

    limits =
      "max_concurrent_streams #{s.max_concurrent_streams}, initial_connection_window " <>
        "#{s.initial_connection_window}, initial_stream_window #{s.initial_stream_window}, " <>
        "adaptive_window #{s.adaptive_window}"

    tls_lines =
      if demo.tls do
        tls = H2Flow.Demo.url(demo, :tls, "")

        """
          TLS          #{tls}/   (h2 or HTTP/1.1 by ALPN; self-signed certificate for localhost)

        Open #{tls}/ in a browser and accept the certificate warning; press Run, or
        open #{tls}/?autorun=1&upload=64 to run both experiments at once.
          curl -k #{tls}/
          curl -k #{tls}/stats
        """
      else
        "\nBrowsers need TLS: run without --no-tls to use the page.\n"
      end

    """
    h2flow demo (#{limits})
      cleartext    #{tcp}/   (HTTP/1.1; h2c with prior knowledge or Upgrade)
    #{tls_lines}
    Try:
      curl #{tcp}/
      curl --http2-prior-knowledge #{tcp}/stats
      curl --http2-prior-knowledge '#{tcp}/slow?ms=500'
      head -c 67108864 /dev/zero | curl --http2-prior-knowledge --data-binary @- #{tcp}/echo
      h2load -n 300 -c 1 -m #{s.max_concurrent_streams} '#{tcp}/slow?ms=1000'

    SIGTERM or Ctrl-D stops the servers gracefully; Ctrl-C twice ends the VM at once.
    """
  end
end
