defmodule H2Flow.Server.Listener do
  @moduledoc false
  # Owns the listen socket, so that it lives as long as the server, and closes it when the
  # server drains.

  use GenServer

  alias H2Flow.Transport

  def start_link(config), do: GenServer.start_link(__MODULE__, config)

  @impl true
  def init(config) do
    case listen(config) do
      {:ok, socket} -> {:ok, %{socket: socket, config: config}}
      {:error, reason} -> {:stop, {:listen_failed, reason}}
    end
  end

  defp listen(c) do
    opts = [{:ip, c.ip}, {:active, false}, reuseaddr: true, backlog: c.backlog, nodelay: true]

    opts =
      if c.transport == :tls,
        do: opts ++ Transport.TLSOptions.listen_options(c.tls, c.http_versions),
        else: opts

    Transport.module(c.transport).listen(c.port, opts)
  end

  # The configuration holds the TLS options, private key included: never in a crash report.
  # gen_server's format_status/1 (OTP 25), which Elixir 1.14's GenServer does not declare.
  @doc false
  def format_status(status) do
    Map.new(status, fn
      {:state, state} -> {:state, Map.drop(state, [:config])}
      other -> other
    end)
  end

  @impl true
  def handle_call(:socket, _from, state), do: {:reply, state.socket, state}
  def handle_call(:config, _from, state), do: {:reply, state.config, state}

  # Stops accepting for good (the server drains): new clients are refused at once instead of
  # waiting in the backlog of a server that is going away.
  def handle_call(:close, _from, state) do
    _ = Transport.module(state.config.transport).close(state.socket)
    {:reply, :ok, state}
  end
end
