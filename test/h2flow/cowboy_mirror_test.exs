# H2Flow.Cowboy.StreamHandler keeps its mirror of Cowboy's windows in Rust
# (native/h2flow_core/src/cowboy.rs). Before that it was Elixir, now test/support/cowboy_oracle.ex:
# this test drives both through the same random sequences of cowboy_stream callbacks and
# compares every returned command list, every message they send themselves and their
# connection_info/1 after every callback.
#
# The handlers call the next handler through :cowboy_stream; stand-ins for :cowboy_stream and
# :cowboy_stream_h are defined here, so this test runs only in a VM without Cowboy (tag
# :no_cowboy, excluded when COWBOY_EBIN is set; CI runs it). The real Cowboy tests are in
# cowboy_test.exs.
unless Code.ensure_loaded?(:cowboy_stream) do
  defmodule :cowboy_stream do
    def init(id, req, opts) do
      [handler | rest] = Map.get(opts, :stream_handlers, [:cowboy_stream_h])
      {commands, state} = handler.init(id, req, %{opts | stream_handlers: rest})
      {commands, {handler, state}}
    end

    def data(id, fin, data, {handler, state}) do
      {commands, state} = handler.data(id, fin, data, state)
      {commands, {handler, state}}
    end

    def info(id, msg, {handler, state}) do
      {commands, state} = handler.info(id, msg, state)
      {commands, {handler, state}}
    end

    def terminate(id, reason, {handler, state}), do: handler.terminate(id, reason, state)
  end

  defmodule :cowboy_stream_h do
    # Returns the commands the test scripted for this callback (none unless it did).
    def init(_id, _req, _opts), do: {[], nil}
    def data(_id, _fin, _data, s), do: {next_commands(), s}
    def info(_id, _msg, s), do: {next_commands(), s}
    def terminate(_id, _reason, _s), do: :ok
    defp next_commands, do: Process.delete(:h2flow_test_next_commands) || []
  end
end

defmodule H2Flow.Cowboy.MirrorTest do
  use ExUnit.Case, async: true

  alias H2Flow.Cowboy.StreamHandler
  alias H2Flow.Test.CowboyOracle

  @moduletag :no_cowboy

  @configs [
    # The recommended options (cowboy_opts/1).
    %{},
    # Tight windows: connection credit must ride on streams, carriers are asked.
    %{initial_connection_window_size: 65_535, initial_stream_window_size: 16_384},
    %{initial_connection_window_size: 131_072, initial_stream_window_size: 65_535},
    # Streams opened before the SETTINGS ACK have a smaller window in Cowboy.
    %{initial_connection_window_size: 262_144, initial_stream_window_size: 131_072},
    # Cowboy's own defaults: margins of 65,535, thresholds of 163,840.
    %{
      initial_connection_window_size: 65_535,
      initial_stream_window_size: 65_535,
      connection_window_margin_size: 65_535,
      stream_window_margin_size: 65_535,
      connection_window_update_threshold: 163_840
    }
  ]

  test "the NIF mirror and the Elixir implementation agree on random callback sequences" do
    seed = ExUnit.configuration()[:seed]
    :rand.seed(:exsss, {seed, 17, 29})

    stats =
      for run <- 1..150, reduce: %{flows: 0, asks: 0, stops: 0, lingering: 0} do
        stats ->
          config = Enum.at(@configs, rem(run, length(@configs)))
          opts = Map.merge(StreamHandler.cowboy_opts(config), config)
          opts = %{opts | stream_handlers: [:cowboy_stream_h]}
          events = events(300 + :rand.uniform(300))

          expected = replay(CowboyOracle, opts, events)
          actual = replay(StreamHandler, opts, events)

          # The first difference, with the event that caused it.
          mismatch =
            Enum.zip([events, expected, actual])
            |> Enum.with_index()
            |> Enum.find(fn {{_, e, a}, _} -> e != a end)

          with {step, index} <- mismatch do
            flunk(
              "run #{run} (#{inspect(config)}): step #{index}\n" <>
                inspect(step, pretty: true, limit: :infinity)
            )
          end

          assert length(expected) == length(actual)

          Enum.reduce(expected, stats, fn {commands, asks, info}, stats ->
            %{
              stats
              | flows: stats.flows + Enum.count(commands, &match?({:flow, _}, &1)),
                asks: stats.asks + length(asks),
                stops: stats.stops + Enum.count(commands, &(&1 == :stop)),
                lingering: stats.lingering + if(info.lingering > 0, do: 1, else: 0)
            }
          end)
      end

    # The sequences reach what the mirror is for: demands, carriers asked, stopped streams
    # whose DATA may still arrive.
    assert stats.flows > 1_000, inspect(stats)
    assert stats.asks > 10, inspect(stats)
    assert stats.stops > 1_000, inspect(stats)
    assert stats.lingering > 100, inspect(stats)
  end

  ## Random sequences of callbacks

  # Events for up to 8 concurrent streams. The generator tracks only what a client and the
  # scripted :cowboy_stream_h decide (which streams are open, stopped, done sending); whatever
  # the handlers decide (their demands, the carriers they ask) is replayed from their output.
  defp events(n) do
    {events, _} =
      Enum.map_reduce(1..n, %{next: 1, open: %{}}, fn _, st ->
        open = st.open

        case {:rand.uniform(10), map_size(open)} do
          {r, count} when (r == 1 and count < 8) or count == 0 ->
            id = st.next
            body? = :rand.uniform(6) > 1

            length =
              if body? and :rand.uniform(4) > 1, do: Enum.random([100, 16_384, 70_000, 300_000])

            event = {:open, id, body?, length}
            stream = %{left: if(body?, do: length || :unknown, else: 0), stopped: false, ref: nil}
            {event, %{st | next: id + 2, open: Map.put(open, id, stream)}}

          {r, _} when r == 2 ->
            {id, _} = Enum.random(open)
            reason = Enum.random([:normal, :normal, :cancel, {:internal_error, :x, "x"}])
            {{:terminate, id, reason}, %{st | open: Map.delete(open, id)}}

          {r, _} when r == 3 ->
            {:carry, st}

          _ ->
            {id, s} = Enum.random(open)
            step(id, s, st)
        end
      end)

    events
  end

  defp step(id, %{stopped: true}, st),
    do: {{:terminate, id, :normal}, %{st | open: Map.delete(st.open, id)}}

  defp step(id, s, st) do
    stop? = :rand.uniform(12) == 1
    commands = if stop?, do: [:stop], else: Enum.random([[], [], [{:flow, 8_000_000}]])
    s = %{s | stopped: stop?}

    case :rand.uniform(4) do
      n when n <= 2 and s.left != 0 ->
        size = Enum.random([1, 1_000, 16_384, 16_384])
        size = if is_integer(s.left), do: min(size, s.left), else: size
        left = if is_integer(s.left), do: s.left - size, else: s.left
        fin? = left == 0 or (left == :unknown and :rand.uniform(8) == 1)
        left = if fin?, do: 0, else: left
        put({:data, id, size, fin?, commands}, id, %{s | left: left}, st)

      3 ->
        ref = make_ref()
        length = Enum.random([:auto, 8_000_000, 10_000, 1_000])
        put({:read, id, ref, length, commands}, id, %{s | ref: ref}, st)

      _ ->
        msg =
          case :rand.uniform(3) do
            1 when s.ref != nil -> {:read_body_timeout, s.ref}
            2 -> {:read_body_timeout, make_ref()}
            _ -> {:response, 200, %{}, "ok"}
          end

        put({:info, id, msg, commands}, id, s, st)
    end
  end

  defp put(event, id, s, st), do: {event, %{st | open: Map.put(st.open, id, s)}}

  ## Replay, in a fresh process (its own dictionary and mailbox)

  # One {commands, asks, connection_info} per event.
  defp replay(handler, opts, events) do
    Task.async(fn ->
      req = fn body?, length ->
        %{version: :"HTTP/2", has_body: body?, body_length: length || :undefined}
      end

      {outputs, _} =
        Enum.map_reduce(events, %{states: %{}, carries: :queue.new()}, fn event, st ->
          {commands, st} = callback(handler, opts, req, event, st)
          asks = asks(handler)
          carries = Enum.reduce(asks, st.carries, &:queue.in/2)
          info = StreamHandler.connection_info(self()) || CowboyOracle.connection_info(self())
          {{commands, asks, info}, %{st | carries: carries}}
        end)

      outputs
    end)
    |> Task.await(60_000)
  end

  defp callback(handler, opts, req, {:open, id, body?, length}, st) do
    {commands, state} = handler.init(id, req.(body?, length), opts)
    {commands, put_in(st.states[id], state)}
  end

  defp callback(handler, _opts, _req, {:terminate, id, reason}, st) do
    :ok = handler.terminate(id, reason, st.states[id])
    {[], %{st | states: Map.delete(st.states, id)}}
  end

  # The oldest message a handler sent itself, delivered to its stream if it is still open
  # (Cowboy drops messages for streams that ended).
  defp callback(handler, _opts, _req, :carry, st) do
    case :queue.out(st.carries) do
      {{:value, id}, carries} when is_map_key(st.states, id) ->
        {commands, state} = handler.info(id, {handler, :carry}, st.states[id])
        {commands, %{st | carries: carries, states: %{st.states | id => state}}}

      {_, carries} ->
        {[], %{st | carries: carries}}
    end
  end

  defp callback(handler, _opts, _req, {:data, id, size, fin?, next}, st) do
    Process.put(:h2flow_test_next_commands, next)
    data = :binary.copy("a", size)
    {commands, state} = handler.data(id, if(fin?, do: :fin, else: :nofin), data, st.states[id])
    {commands, %{st | states: %{st.states | id => state}}}
  end

  defp callback(handler, _opts, _req, {:read, id, ref, length, next}, st) do
    Process.put(:h2flow_test_next_commands, next)
    msg = {:read_body, self(), ref, length, 15_000}
    {commands, state} = handler.info(id, msg, st.states[id])
    {commands, %{st | states: %{st.states | id => state}}}
  end

  defp callback(handler, _opts, _req, {:info, id, msg, next}, st) do
    Process.put(:h2flow_test_next_commands, next)
    {commands, state} = handler.info(id, msg, st.states[id])
    {commands, %{st | states: %{st.states | id => state}}}
  end

  # The streams a handler asked to carry connection credit, in order.
  defp asks(handler) do
    receive do
      {{pid, id}, {^handler, :carry}} when pid == self() -> [id | asks(handler)]
    after
      0 -> []
    end
  end
end
