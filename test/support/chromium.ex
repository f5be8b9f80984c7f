defmodule H2Flow.Test.Chromium do
  @moduledoc false
  # Headless Chromium for the browser tests, driven through the DevTools protocol over
  # --remote-debugging-pipe: JSON messages ending in NUL, commands on the browser's fd 3,
  # answers and events on its fd 4. A shell maps the port's stdin and stdout onto those fds,
  # so nothing but Chromium itself is needed (no Node.js, no WebSocket client, no download).
  #
  # The process owns the port; start it with start_supervised!/1 so that the ExUnit
  # supervisor stops it, and kills Chromium's whole process group, even when a test fails.

  use GenServer

  alias H2Flow.Test.JSON

  @executable "/usr/bin/chromium"

  # Chromium's options for a hermetic run: no sandbox (CI runs as root), no GPU, no QUIC (so
  # the page talks HTTP/2 over TCP), no background traffic of its own, a fresh profile.
  @flags ~w(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
            --disable-background-networking --disable-component-update --disable-sync
            --disable-extensions --disable-default-apps --mute-audio --hide-scrollbars
            --ignore-certificate-errors --remote-debugging-pipe)

  def child_spec(opts), do: %{id: __MODULE__, start: {__MODULE__, :start_link, [opts]}}

  @doc "Starts Chromium. Options: `:window` (`{width, height}`, default `{1000, 700}`)."
  def start_link(opts \\ []), do: GenServer.start_link(__MODULE__, opts)

  @doc """
  Sends a DevTools command (to the page session `session`, or to the browser when `nil`) and
  returns `{:ok, result}` or `{:error, error}`; exits when no answer comes within `timeout` ms.
  """
  def command(browser, method, params \\ %{}, session \\ nil, timeout \\ 10_000) do
    GenServer.call(browser, {:command, method, params, session}, timeout)
  end

  @doc "Like `command/5`, but returns the result and raises on an error answer."
  def command!(browser, method, params \\ %{}, session \\ nil, timeout \\ 10_000) do
    case command(browser, method, params, session, timeout) do
      {:ok, result} -> result
      {:error, error} -> raise "#{method} failed: #{inspect(error)}\n#{log(browser)}"
    end
  end

  @doc "Opens a tab on `about:blank` with a viewport of the window's size; returns its session."
  def new_page!(browser) do
    {width, height} = GenServer.call(browser, :window)
    # The first command's answer also waits for the browser to start: a generous bound.
    %{"targetId" => target} =
      command!(browser, "Target.createTarget", %{url: "about:blank"}, nil, 60_000)

    %{"sessionId" => session} =
      command!(browser, "Target.attachToTarget", %{targetId: target, flatten: true})

    command!(
      browser,
      "Emulation.setDeviceMetricsOverride",
      %{width: width, height: height, deviceScaleFactor: 1, mobile: false},
      session
    )

    session
  end

  @doc "The tail of Chromium's own output (stdout and stderr), for failure messages."
  def log(browser) do
    path = GenServer.call(browser, :log_path)

    case File.read(path) do
      {:ok, text} -> "Chromium's output (#{path}), last lines:\n" <> tail(text, 30)
      {:error, _} -> "Chromium wrote no output."
    end
  catch
    :exit, _ -> "Chromium has exited (its output went with its directory)."
  end

  defp tail(text, lines),
    do: text |> String.split("\n") |> Enum.take(-lines) |> Enum.join("\n")

  # --- server ----------------------------------------------------------------------------

  @impl true
  def init(opts) do
    unless File.exists?(@executable) do
      raise "#{@executable} is missing: install Debian's chromium (.ci/run does), or leave " <>
              "these tests out with `mix test --exclude browser`"
    end

    # terminate/2 must run when the test supervisor stops us, to kill the browser.
    Process.flag(:trap_exit, true)
    {width, height} = Keyword.get(opts, :window, {1000, 700})
    dir = Path.join(System.tmp_dir!(), "h2flow-chromium-#{System.unique_integer([:positive])}")
    File.rm_rf!(dir)
    File.mkdir_p!(dir)
    log = Path.join(dir, "chromium.log")

    # :flags adds to ours (--disable-http2, say).
    flags =
      @flags ++
        ["--user-data-dir=#{Path.join(dir, "profile")}", "--window-size=#{width},#{height}"] ++
        Keyword.get(opts, :flags, [])

    # fd 3 reads the port's stdin and fd 4 writes to its stdout; Chromium's own stdout and
    # stderr go to a log file, which would otherwise mix with the protocol.
    script = ~s(exec "$0" "$@" 3<&0 4>&1 </dev/null >"$H2FLOW_CHROMIUM_LOG" 2>&1)

    port =
      Port.open({:spawn_executable, "/bin/sh"}, [
        :binary,
        :exit_status,
        args: ["-c", script, @executable | flags],
        # Chromium keeps its crash database under XDG_CONFIG_HOME, not in --user-data-dir.
        env: [
          {~c"H2FLOW_CHROMIUM_LOG", String.to_charlist(log)},
          {~c"XDG_CONFIG_HOME", String.to_charlist(Path.join(dir, "config"))},
          {~c"XDG_CACHE_HOME", String.to_charlist(Path.join(dir, "cache"))}
        ]
      ])

    # Port programs are session (and so process group) leaders: this is Chromium's pid once the
    # shell and the /usr/bin/chromium wrapper have exec'd it, and the id of the group that its
    # helper processes (zygote, renderers, GPU and network services) belong to. Its crash
    # handlers start sessions of their own: they, like every process of this browser, are also
    # found by their arguments, which name `dir`.
    {:os_pid, os_pid} = Port.info(port, :os_pid)

    state = %{
      port: port,
      os_pid: os_pid,
      dir: dir,
      log: log,
      window: {width, height},
      buffer: "",
      next_id: 1,
      pending: %{}
    }

    {:ok, state}
  end

  @impl true
  def handle_call({:command, method, params, session}, from, state) do
    message = %{id: state.next_id, method: method, params: params}
    message = if session, do: Map.put(message, :sessionId, session), else: message
    true = Port.command(state.port, [JSON.encode!(message), 0])
    pending = Map.put(state.pending, state.next_id, from)
    {:noreply, %{state | next_id: state.next_id + 1, pending: pending}}
  end

  def handle_call(:window, _from, state), do: {:reply, state.window, state}
  def handle_call(:log_path, _from, state), do: {:reply, state.log, state}

  @impl true
  def handle_info({port, {:data, data}}, %{port: port} = state) do
    [rest | messages] =
      (state.buffer <> data) |> :binary.split(<<0>>, [:global]) |> Enum.reverse()

    state = messages |> Enum.reverse() |> Enum.reduce(%{state | buffer: rest}, &dispatch/2)
    {:noreply, state}
  end

  def handle_info({port, {:exit_status, status}}, %{port: port} = state) do
    {:stop, {:chromium_exited, status}, state}
  end

  def handle_info({:EXIT, _pid, reason}, state), do: {:stop, reason, state}

  # Answers go to their caller; events are not used (the tests wait on the page's own state).
  defp dispatch(json, state) do
    case JSON.decode!(json) do
      %{"id" => id} = answer when is_map_key(state.pending, id) ->
        reply = if answer["error"], do: {:error, answer["error"]}, else: {:ok, answer["result"]}
        GenServer.reply(state.pending[id], reply)
        %{state | pending: Map.delete(state.pending, id)}

      _event ->
        state
    end
  end

  @impl true
  def terminate(_reason, state) do
    try do
      Port.close(state.port)
    rescue
      # Already closed: Chromium exited.
      ArgumentError -> :ok
    end

    kill_all(state)
    File.rm_rf(state.dir)
    :ok
  end

  # SIGKILL to the whole group and to the crash handlers (found by their arguments, which name
  # `dir`), then waits (bounded) until none of them is left, so that no browser process
  # outlives the test.
  defp kill_all(state), do: H2Flow.Test.OSProcess.kill_all(state.os_pid, state.dir, "Chromium")
end
